/**
 * A Deno FFI binding to onnxruntime's C API: only what the runtime engine needs (an environment,
 * session options with threads and config entries, sessions from bytes, tensors over caller
 * memory, `Run` with caller-owned outputs, release). `Run` writes into the caller's output
 * buffers in place — what makes the engine's preallocated KV caches possible (docs/architecture.md,
 * "Runtime engine").
 *
 * The library is the `libonnxruntime` that the onnxruntime-node package ships; its function table
 * comes from `OrtGetApiBase()->GetApi(ORT_API_VERSION)`. The table is append-only, so each index
 * below is fixed by the header that introduced it (checked against onnxruntime_c_api.h of 1.29,
 * whose first 425 entries 1.30 keeps). The file itself comes from `ensureOrtLibrary`
 * (ort_library.ts); library errors carry its `NATIVE_*` codes.
 *
 * Ownership: every native object is wrapped in a handle whose `release()` frees it exactly once
 * (later calls do nothing); `OrtApi.live` counts the handles not yet released, per kind, so tests
 * can check that nothing leaks. A tensor handle keeps the JS buffer it points into alive. Every
 * `OrtStatus` error becomes a `RuntimeError` carrying onnxruntime's message (the status is
 * released first).
 *
 * Calls are synchronous: run them in the runtime Worker, never on the main thread.
 * @module
 */
import { RuntimeError } from "../../errors.ts";
import { NATIVE_ERROR_CODES } from "./ort_library.ts";
import {
  FNS,
  type Fns,
  ORT_API_VERSION,
  ORT_ERROR_NAMES,
  OrtApiIndex,
  type TensorTypeId,
} from "./ort_functions.ts";

const LOAD_FAILED = NATIVE_ERROR_CODES.LOAD_FAILED;

export { ORT_API_VERSION, OrtApiIndex, TensorType, type TensorTypeId } from "./ort_functions.ts";

import {
  cString,
  noLiveObjects,
  OrtHandle,
  type OrtObjectKind,
  OrtSession,
  type OrtSessionSettings,
  OrtTensor,
  type Ptr,
  type TypedArray,
} from "./ort_handles.ts";
export {
  cString,
  OrtHandle,
  type OrtObjectKind,
  OrtSession,
  type OrtSessionSettings,
  OrtTensor,
} from "./ort_handles.ts";

/** The file name of the onnxruntime library on this platform. */
export function ortLibraryName(os: typeof Deno.build.os = Deno.build.os): string {
  return os === "windows"
    ? "onnxruntime.dll"
    : os === "darwin"
    ? "libonnxruntime.dylib"
    : "libonnxruntime.so.1";
}

/** Hint for a library that failed to load (the system's part: what `plumise doctor` checks too). */
const LIBRARY_HINT = "use the library the runtime copies into its cache (`plumise doctor` checks it); " + (
  Deno.build.os === "windows"
    ? "onnxruntime.dll needs the Microsoft Visual C++ Redistributable (x64)"
    : Deno.build.os === "linux"
    ? "it needs glibc ≥ 2.28 and libstdc++ (Debian 10+, Ubuntu 20.04+); a musl system (Alpine) cannot load it"
    : "check that the file is the one for this machine's architecture"
);

/**
 * Keeps the library at `path` loaded until the process exits, whatever closes its handles: a second
 * `dlopen` with RTLD_NODELETE (Linux, macOS) or a second `LoadLibraryW` that is never freed
 * (Windows). Deno closes a Worker's libraries when the Worker ends; onnxruntime unloaded while its
 * process runs on crashes at exit (its static destructors and exit handlers run twice, or from an
 * unmapped library). Best effort: false where the system's loader cannot be reached.
 */
export function pinLibrary(path: string): boolean {
  try {
    if (Deno.build.os === "windows") {
      const k = Deno.dlopen("kernel32.dll", { LoadLibraryW: { parameters: ["buffer"], result: "pointer" } });
      const wide = new Uint16Array(path.length + 1);
      for (let i = 0; i < path.length; i++) wide[i] = path.charCodeAt(i);
      const ok = k.symbols.LoadLibraryW(wide) !== null;
      k.close();
      return ok;
    }
    const darwin = Deno.build.os === "darwin";
    const libc = Deno.dlopen(darwin ? "/usr/lib/libSystem.B.dylib" : "libc.so.6", {
      dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
    });
    const RTLD_NOW = 2, RTLD_NODELETE = darwin ? 0x80 : 0x1000;
    const ok = libc.symbols.dlopen(cString(path), RTLD_NOW | RTLD_NODELETE) !== null;
    libc.close();
    return ok;
  } catch {
    return false;
  }
}

const ptrValue = (p: Ptr): bigint => BigInt(Deno.UnsafePointer.value(p));

/** A loaded onnxruntime library and its function table. */
export class OrtApi {
  /** Handles not yet released, per kind. */
  readonly live: Record<OrtObjectKind, number> = noLiveObjects();
  readonly #fns: Fns;
  readonly #out = new BigUint64Array(1);
  #env?: OrtHandle;
  #memory?: OrtHandle;

  private constructor(
    readonly path: string,
    readonly version: string,
    fns: Fns,
  ) {
    this.#fns = fns;
  }

  /**
   * Opens the library at `path` and reads its API table. Throws `NATIVE_LOAD_FAILED` naming the file
   * when it is missing, not a library for this platform, or too old for `ORT_API_VERSION`.
   */
  static load(path: string): OrtApi {
    let lib: Deno.DynamicLibrary<{ OrtGetApiBase: { parameters: []; result: "pointer" } }>;
    try {
      lib = Deno.dlopen(path, { OrtGetApiBase: { parameters: [], result: "pointer" } });
    } catch (cause) {
      let why = (cause as Error).message;
      try {
        Deno.statSync(path);
      } catch {
        why = "the file does not exist";
      }
      throw new RuntimeError(LOAD_FAILED, `cannot load the onnxruntime library ${path}: ${why}`, {
        hint: LIBRARY_HINT,
        details: { library: path },
        cause,
      });
    }
    try {
      const base = lib.symbols.OrtGetApiBase();
      pinLibrary(path);
      if (!base) throw new Error("OrtGetApiBase returned NULL");
      const view = new Deno.UnsafePointerView(base);
      const getApi = new Deno.UnsafeFnPointer(view.getPointer(0)!, {
        parameters: ["u32"],
        result: "pointer",
      });
      const getVersion = new Deno.UnsafeFnPointer(view.getPointer(8)!, { parameters: [], result: "pointer" });
      const version = Deno.UnsafePointerView.getCString(getVersion.call()!);
      const table = getApi.call(ORT_API_VERSION);
      if (!table) {
        throw new RuntimeError(
          LOAD_FAILED,
          `the onnxruntime library ${path} (version ${version}) does not offer C API version ${ORT_API_VERSION}`,
          { hint: LIBRARY_HINT, details: { library: path, version } },
        );
      }
      const tv = new Deno.UnsafePointerView(table);
      const fns = {} as Record<string, unknown>;
      for (const [name, idx] of Object.entries(OrtApiIndex)) {
        const p = tv.getPointer(idx * 8);
        if (!p) throw new Error(`OrtApi entry ${name} (${idx}) is NULL`);
        const def = FNS[name as keyof typeof FNS] as Deno.ForeignFunction;
        fns[name] = new Deno.UnsafeFnPointer(p as Deno.PointerObject<typeof def>, def);
      }
      // The library stays loaded for the life of the thread: onnxruntime's globals outlive sessions.
      return new OrtApi(path, version, fns as Fns);
    } catch (cause) {
      lib.close();
      if (cause instanceof RuntimeError) throw cause;
      throw new RuntimeError(
        LOAD_FAILED,
        `${path} is not a usable onnxruntime library: ${(cause as Error).message}`,
        { hint: LIBRARY_HINT, details: { library: path }, cause },
      );
    }
  }

  /** Throws a RuntimeError with onnxruntime's message when `status` is not NULL (and releases it). */
  check(status: Ptr, what: string, hint = "this is a bug in the runtime engine; see the message"): void {
    if (status === null) return;
    const code = this.#fns.GetErrorCode.call(status);
    const msgPtr = this.#fns.GetErrorMessage.call(status);
    const message = msgPtr ? Deno.UnsafePointerView.getCString(msgPtr) : "(no message)";
    this.#fns.ReleaseStatus.call(status);
    throw new RuntimeError("ENGINE_FAILED", `${what}: ${message}`, {
      hint,
      details: { ortCode: ORT_ERROR_NAMES[code] ?? code },
    });
  }

  #takeOut(): Ptr {
    return Deno.UnsafePointer.create(this.#out[0]);
  }

  /** The process's onnxruntime environment (created on first use, released by `dispose`). */
  /**
   * Threads of one pool that every session of this binding shares (set before the first session is
   * made; 0, the default: each session has a pool of its own). Sessions then take no thread count of
   * their own; the pool's threads are created with the environment and inherit the CPUs of the thread
   * that makes it (docs/architecture.md, "Continuous batching").
   */
  globalThreads = 0;

  env(): OrtHandle {
    if (this.#env && !this.#env.released) return this.#env;
    if (this.globalThreads > 0) return this.#env = this.#globalEnv(this.globalThreads);
    this.check(
      // FATAL only: every error reaches the caller as a RuntimeError, so none is printed as well
      this.#fns.CreateEnv.call(4, cString("plumise"), this.#out),
      "creating the environment",
    );
    this.#env = new OrtHandle(this, "env", this.#takeOut(), (p) => this.#fns.ReleaseEnv.call(p));
    return this.#env;
  }

  /** An environment whose one pool of `threads` (the caller included) every session shares. */
  #globalEnv(threads: number): OrtHandle {
    const f = this.#fns;
    this.check(f.CreateThreadingOptions.call(this.#out), "creating threading options");
    const t = this.#takeOut();
    try {
      this.check(f.SetGlobalIntraOpNumThreads.call(t, threads), "setting the shared pool's threads");
      // no spinning: a shared pool that spins keeps spinning after a step (session.force_spinning_stop
      // parks only a session's own pool), taking the cores the main thread, the head and the other
      // spans' processes need; docs/benchmarks.md, "Continuous batching", has the trade
      this.check(f.SetGlobalSpinControl.call(t, 0), "parking the shared pool's threads");
      // FATAL only, as in `env`
      this.check(
        f.CreateEnvWithGlobalThreadPools.call(4, cString("plumise"), t, this.#out),
        "creating the environment",
      );
    } finally {
      f.ReleaseThreadingOptions.call(t);
    }
    return new OrtHandle(this, "env", this.#takeOut(), (p) => this.#fns.ReleaseEnv.call(p));
  }

  #memoryInfo(): Ptr {
    if (!this.#memory || this.#memory.released) {
      this.check(
        this.#fns.CreateCpuMemoryInfo.call(0, /* OrtDeviceAllocator */ 0, /* OrtMemTypeDefault */ this.#out),
        "creating CPU memory info",
      );
      this.#memory = new OrtHandle(
        this,
        "memory",
        this.#takeOut(),
        (p) => this.#fns.ReleaseMemoryInfo.call(p),
      );
    }
    return this.#memory.ptr;
  }

  /** A tensor of `shape` over `data` (no copy): onnxruntime reads and writes `data` itself. */
  tensor(data: TypedArray, shape: readonly number[], type: TensorTypeId): OrtTensor {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) {
      throw new RuntimeError("ENGINE_FAILED", `tensor of shape [${shape}] over ${data.length} values`, {
        hint: "this is a bug in the runtime engine",
      });
    }
    const dims = BigInt64Array.from(shape, (d) => BigInt(d));
    // A zero-length view has no data pointer of its own; any valid pointer does for 0 bytes.
    const ptr = data.byteLength ? Deno.UnsafePointer.of(data) : Deno.UnsafePointer.of(dims);
    this.check(
      this.#fns.CreateTensorWithDataAsOrtValue.call(
        this.#memoryInfo(),
        ptr,
        BigInt(data.byteLength),
        dims,
        BigInt(dims.length),
        type,
        this.#out,
      ),
      `creating a tensor of shape [${shape}]`,
    );
    return new OrtTensor(this, this.#takeOut(), (p) => this.#fns.ReleaseValue.call(p), data, [...shape]);
  }

  /**
   * A container for packed weights that sessions made with it share (`OrtSessionSettings.shared`);
   * release it after them.
   */
  prepackedContainer(): OrtHandle {
    this.check(
      this.#fns.CreatePrepackedWeightsContainer.call(this.#out),
      "creating a packed-weights container",
    );
    return new OrtHandle(
      this,
      "container",
      this.#takeOut(),
      (p) => this.#fns.ReleasePrepackedWeightsContainer.call(p),
    );
  }

  /**
   * Creates a session from model bytes. `what` names the graph in errors (e.g. "block 3"); a
   * refused graph throws ENGINE_FAILED with onnxruntime's message (which names the node and op).
   */
  session(
    model: Uint8Array,
    what: string,
    inputs: readonly string[],
    outputs: readonly string[],
    settings: OrtSessionSettings,
  ): OrtSession {
    try {
      return this.#session(model, what, inputs, outputs, settings);
    } catch (err) {
      // onnxruntime keeps one environment per process: where another binding made it without a
      // shared pool, sessions here must have pools of their own
      if (this.globalThreads === 0 || !/EnvCreatedWithGlobalThreadPools/.test(String(err))) throw err;
      this.globalThreads = 0;
      return this.#session(model, what, inputs, outputs, settings);
    }
  }

  #session(
    model: Uint8Array,
    what: string,
    inputs: readonly string[],
    outputs: readonly string[],
    settings: OrtSessionSettings,
  ): OrtSession {
    const f = this.#fns;
    const env = this.env();
    this.check(f.CreateSessionOptions.call(this.#out), "creating session options");
    const opts = new OrtHandle(this, "options", this.#takeOut(), (p) => f.ReleaseSessionOptions.call(p));
    try {
      const o = opts.ptr;
      if (settings.callerOnly) this.check(f.SetIntraOpNumThreads.call(o, 1), "setting intra-op threads");
      else if (this.globalThreads > 0 && !settings.ownPool) {
        this.check(f.DisablePerSessionThreads.call(o), "sharing the pool");
      } else this.check(f.SetIntraOpNumThreads.call(o, settings.intraOpThreads), "setting intra-op threads");
      this.check(f.SetInterOpNumThreads.call(o, 1), "setting inter-op threads");
      this.check(f.SetSessionExecutionMode.call(o, 0 /* ORT_SEQUENTIAL */), "setting the execution mode");
      this.check(
        f.SetSessionGraphOptimizationLevel.call(o, 99 /* ORT_ENABLE_ALL */),
        "setting optimizations",
      );
      this.check(f.DisableCpuMemArena.call(o), "disabling the memory arena");
      // Shapes change every step (the past grows): a memory pattern would be planned and cached for each.
      this.check(f.DisableMemPattern.call(o), "disabling memory patterns");
      for (const [k, v] of Object.entries(settings.config ?? {})) {
        this.check(
          f.AddSessionConfigEntry.call(o, cString(k), cString(v)),
          `setting session option ${k}=${v}`,
          "check the runtime's settings (threads, CPU pinning)",
        );
      }
      const ext = settings.externalData ?? [];
      if (ext.length) {
        const names = ext.map((e) => cString(e.path));
        const namePtrs = BigUint64Array.from(names, (b) => ptrValue(Deno.UnsafePointer.of(b)));
        const bufPtrs = BigUint64Array.from(ext, (e) => ptrValue(Deno.UnsafePointer.of(e.data)));
        const lens = BigUint64Array.from(ext, (e) => BigInt(e.data.byteLength));
        this.check(
          f.AddExternalInitializersFromFilesInMemory.call(o, namePtrs, bufPtrs, lens, BigInt(ext.length)),
          `adding the ${what} graph's external weights`,
        );
      }
      for (const { name, value } of settings.shared?.initializers ?? []) {
        this.check(f.AddInitializer.call(o, cString(name), value.ptr), `sharing the ${what} graph's ${name}`);
      }
      const container = settings.shared?.container;
      this.check(
        container
          ? f.CreateSessionFromArrayWithPrepackedWeightsContainer.call(
            env.ptr,
            model,
            BigInt(model.byteLength),
            o,
            container.ptr,
            this.#out,
          )
          : f.CreateSessionFromArray.call(env.ptr, model, BigInt(model.byteLength), o, this.#out),
        `onnxruntime refused the ${what} graph`,
        "the checkpoint may be malformed or of an unsupported architecture; the message names the node",
      );
    } finally {
      opts.release();
    }
    return new OrtSession(this, this.#takeOut(), (p) => f.ReleaseSession.call(p), what, inputs, outputs);
  }

  /**
   * Runs `session` with `inputs` (in the session's input order) into caller-owned `outputs` (in
   * its output order): onnxruntime writes the results into their buffers in place.
   */
  run(session: OrtSession, inputs: readonly OrtTensor[], outputs: readonly OrtTensor[]): void {
    const ip = session.inputPtrs, op = session.outputPtrs;
    for (let i = 0; i < ip.length; i++) ip[i] = ptrValue(inputs[i].ptr);
    for (let i = 0; i < op.length; i++) op[i] = ptrValue(outputs[i].ptr);
    this.check(
      this.#fns.Run.call(
        session.ptr,
        null,
        session.inputNamePtrs,
        ip,
        BigInt(ip.length),
        session.outputNamePtrs,
        BigInt(op.length),
        op,
      ),
      `the ${session.what} graph failed`,
    );
  }

  /** Releases the environment and memory info (sessions and tensors must be released first). */
  dispose(): void {
    this.#memory?.release();
    this.#env?.release();
  }
}
