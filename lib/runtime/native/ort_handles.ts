/**
 * The handles of the onnxruntime binding (ort_api.ts): native objects released exactly once and
 * counted per kind in `OrtApi.live`, tensors that keep their JS buffer alive, sessions with their
 * input and output names ready for `Run`, and the settings a session is made with.
 * @module
 */
import { RuntimeError } from "../../errors.ts";
import type { OrtApi } from "./ort_api.ts";

export type Ptr = Deno.PointerValue;
export type TypedArray =
  | Float32Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | BigInt64Array
  | Uint16Array;

const ENC = new TextEncoder();
/** A NUL-terminated UTF-8 copy of `s`. */
export const cString = (s: string): Uint8Array<ArrayBuffer> => ENC.encode(s + "\0");

/** Kinds of native objects a handle can own. */
export type OrtObjectKind = "env" | "options" | "session" | "value" | "memory" | "container";

/** A count of zero for every kind (what `OrtApi.live` starts at, and returns to when all is released). */
export function noLiveObjects(): Record<OrtObjectKind, number> {
  return { env: 0, options: 0, session: 0, value: 0, memory: 0, container: 0 };
}

/** A native object with exactly-once release. */
export class OrtHandle {
  #ptr: Ptr;
  #release: ((p: Ptr) => void) | undefined;
  constructor(
    readonly api: OrtApi,
    readonly kind: OrtObjectKind,
    ptr: Ptr,
    release: (p: Ptr) => void,
  ) {
    this.#ptr = ptr;
    this.#release = release;
    api.live[kind]++;
  }
  /** The native pointer; throws ENGINE_FAILED after release (a use-after-free caught in JS). */
  get ptr(): Ptr {
    if (this.#release === undefined) {
      throw new RuntimeError("ENGINE_FAILED", `onnxruntime ${this.kind} used after release`, {
        hint: "this is a bug in the runtime engine",
      });
    }
    return this.#ptr;
  }
  get released(): boolean {
    return this.#release === undefined;
  }
  /** Frees the native object (once; later calls do nothing). */
  release(): void {
    const r = this.#release;
    if (!r) return;
    this.#release = undefined;
    this.api.live[this.kind]--;
    r(this.#ptr);
    this.#ptr = null;
  }
}

/** A tensor over caller memory; keeps that memory alive until released. */
export class OrtTensor extends OrtHandle {
  constructor(
    api: OrtApi,
    ptr: Ptr,
    release: (p: Ptr) => void,
    readonly data: TypedArray,
    readonly shape: readonly number[],
  ) {
    super(api, "value", ptr, release);
  }
}

/** A session with its input and output names, ready for `OrtApi.run`. */
export class OrtSession extends OrtHandle {
  /** Pointer arrays for Run, filled per call (no allocation per run). */
  readonly inputPtrs: BigUint64Array<ArrayBuffer>;
  readonly outputPtrs: BigUint64Array<ArrayBuffer>;
  readonly inputNamePtrs: BigUint64Array<ArrayBuffer>;
  readonly outputNamePtrs: BigUint64Array<ArrayBuffer>;
  readonly #names: Uint8Array[];
  constructor(
    api: OrtApi,
    ptr: Ptr,
    release: (p: Ptr) => void,
    readonly what: string,
    readonly inputs: readonly string[],
    readonly outputs: readonly string[],
  ) {
    super(api, "session", ptr, release);
    const enc = (names: readonly string[]) => names.map(cString);
    const ins = enc(inputs), outs = enc(outputs);
    this.#names = [...ins, ...outs];
    const ptrs = (bufs: Uint8Array[]) =>
      BigUint64Array.from(bufs, (b) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b))));
    this.inputNamePtrs = ptrs(ins);
    this.outputNamePtrs = ptrs(outs);
    this.inputPtrs = new BigUint64Array(inputs.length);
    this.outputPtrs = new BigUint64Array(outputs.length);
  }
}

/** Session settings. */
export interface OrtSessionSettings {
  /** Intra-op threads (the calling thread counts as one); ignored where the pool is shared. */
  intraOpThreads: number;
  /** Run on the calling thread alone even where `globalThreads` shares one pool. */
  callerOnly?: boolean;
  /** `AddSessionConfigEntry` pairs (onnxruntime_session_options_config_keys.h). */
  config?: Record<string, string>;
  /** In-memory external data files the model's initializers refer to by name. */
  externalData?: readonly { path: string; data: Uint8Array }[];
  /**
   * A pool of this session's own (`intraOpThreads`) even where `globalThreads` shares one: its
   * threads are made now and inherit the calling thread's CPUs, and `session.force_spinning_stop`
   * parks them after each run.
   */
  ownPool?: boolean;
  /**
   * Initializers given as tensors over caller memory (`AddInitializer`): onnxruntime uses that
   * memory instead of copying, and packs them once into `container` for every session made with it
   * (the same weights in several graphs then take their packed bytes once).
   */
  shared?: { container: OrtHandle; initializers: readonly { name: string; value: OrtTensor }[] };
}
