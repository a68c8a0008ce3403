/**
 * Safetensors reading: parse the header, then read only the byte ranges of the tensors asked
 * for, converting F32 / F16 / BF16 to float32 on load. `CheckpointTensors` spans the shards of a
 * checkpoint (via model.safetensors.index.json's weight_map, or one model.safetensors).
 * @module
 */
import { RuntimeError } from "../errors.ts";

export type SafetensorsDtype = "F32" | "F16" | "BF16";
const DTYPE_BYTES: Record<string, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface TensorEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte offsets in the file. */
  readonly begin: number;
  readonly end: number;
}

/** A float32 tensor loaded from a checkpoint. */
export interface LoadedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/**
 * A tensor as the file stores it: its dtype (`F32`, `F16`, `BF16`, …) and bytes, in memory or read
 * from the file when asked (a matrix then never needs to be in memory whole, weight_rows.ts).
 */
export interface StoredTensor {
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly byteLength: number;
  /** Copies bytes [offset, offset + into.length) of the tensor into `into`. */
  readInto(offset: number, into: Uint8Array): void;
  /** The bytes, where they are in memory. */
  readonly bytes?: Uint8Array;
}

/** A stored tensor whose bytes are in memory. */
export function storedInMemory(shape: readonly number[], dtype: string, bytes: Uint8Array): StoredTensor {
  return {
    shape,
    dtype,
    byteLength: bytes.length,
    bytes,
    readInto: (offset, into) => into.set(bytes.subarray(offset, offset + into.length)),
  };
}

/** All of a stored tensor's bytes (its own array where in memory, read from the file otherwise). */
export function storedBytes(x: StoredTensor): Uint8Array {
  if (x.bytes) return x.bytes;
  const out = new Uint8Array(x.byteLength);
  x.readInto(0, out);
  return out;
}

/** A tensor of a checkpoint, in memory (`readRaw`) or read when asked (`lazy`). */
export type RawTensor = StoredTensor & { readonly name: string };

/** Header size cap (real headers are a few hundred KB). */
const MAX_HEADER = 100 * 1024 * 1024;

const badFile = (path: string, message: string, details: Record<string, unknown> = {}) =>
  new RuntimeError("BAD_CHECKPOINT", `${path}: ${message}`, {
    hint: "the file is truncated or not a safetensors file; delete it from the cache to download it again",
    details: { path, ...details },
  });

async function readExactly(file: Deno.FsFile, pos: number, buf: Uint8Array, path: string): Promise<void> {
  await file.seek(pos, Deno.SeekMode.Start);
  let off = 0;
  while (off < buf.length) {
    const n = await file.read(buf.subarray(off));
    if (n === null) {
      throw badFile(
        path,
        `unexpected end of file at byte ${pos + off} (wanted ${buf.length} bytes from ${pos})`,
      );
    }
    off += n;
  }
}

/**
 * Converts raw little-endian tensor bytes to float32, into `out` when given (of the element count;
 * a new array otherwise).
 */
export function toFloat32(
  dtype: string,
  bytes: Uint8Array,
  name = "tensor",
  out?: Float32Array,
): Float32Array {
  if (dtype === "F32") {
    const o = out ?? new Float32Array(bytes.length / 4);
    new Uint8Array(o.buffer, o.byteOffset, bytes.length).set(bytes);
    return o;
  }
  if (dtype === "F16" || dtype === "BF16") {
    const n = bytes.length / 2, o = out ?? new Float32Array(n);
    // a view of the bytes where they are aligned, a copy where not
    const u16 = bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
      : new Uint16Array(bytes.slice().buffer);
    if (dtype === "F16") {
      o.set(new Float16Array(u16.buffer, u16.byteOffset, n));
      return o;
    }
    const u32 = new Uint32Array(o.buffer, o.byteOffset, n);
    for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
    return o;
  }
  throw new RuntimeError(
    "UNSUPPORTED_MODEL",
    `tensor ${name} has dtype ${dtype}; only F32, F16 and BF16 weights load`,
    {
      hint: "use a checkpoint stored in float32, float16 or bfloat16",
      details: { dtype, name },
    },
  );
}

/** One open safetensors file. */
export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  #file: Deno.FsFile | undefined;

  private constructor(
    readonly path: string,
    file: Deno.FsFile,
    tensors: Map<string, TensorEntry>,
    metadata: Record<string, string>,
  ) {
    this.#file = file;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens `path` and parses (and validates) its header. */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (cause) {
      throw new RuntimeError("BAD_CHECKPOINT", `cannot open ${path}: ${(cause as Error).message}`, {
        hint: "check the path and permissions",
        cause,
      });
    }
    try {
      const size = (await file.stat()).size;
      if (size < 8) throw badFile(path, `only ${size} bytes`);
      const lenBuf = new Uint8Array(8);
      await readExactly(file, 0, lenBuf, path);
      const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
      if (headerLen < 2 || headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw badFile(path, `header length ${headerLen} is impossible for a file of ${size} bytes`);
      }
      const hb = new Uint8Array(headerLen);
      await readExactly(file, 8, hb, path);
      let header: Record<string, unknown>;
      try {
        header = JSON.parse(new TextDecoder().decode(hb));
      } catch (cause) {
        throw badFile(path, `header is not JSON (${(cause as Error).message})`);
      }
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        throw badFile(path, "header is not a JSON object");
      }
      const dataStart = 8 + headerLen;
      const tensors = new Map<string, TensorEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, v] of Object.entries(header)) {
        if (name === "__metadata__") {
          metadata = (v ?? {}) as Record<string, string>;
          continue;
        }
        if (typeof v !== "object" || v === null) {
          throw badFile(path, `malformed header entry for ${name}`, { entry: v });
        }
        const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
        const shape = e.shape;
        const offs = e.data_offsets;
        if (
          typeof e.dtype !== "string" || !Array.isArray(shape) || !shape.every((d) =>
            Number.isInteger(d) && d >= 0
          ) ||
          !Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)
        ) {
          throw badFile(path, `malformed header entry for ${name}`, { entry: v });
        }
        const [b, en] = offs as number[];
        const count = (shape as number[]).reduce((a, d) => a * d, 1);
        const width = DTYPE_BYTES[e.dtype];
        if (width !== undefined && (en - b) !== count * width) {
          throw badFile(path, `${name}: ${en - b} bytes for ${e.dtype}[${shape}]`, { name });
        }
        if (en < b || dataStart + en > size) {
          throw badFile(
            path,
            `${name}: data [${b}, ${en}) lies outside the file (${size - dataStart} data bytes)`,
            { name },
          );
        }
        tensors.set(name, {
          name,
          dtype: e.dtype,
          shape: shape as number[],
          begin: dataStart + b,
          end: dataStart + en,
        });
      }
      return new SafetensorsFile(path, file, tensors, metadata);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Raw bytes of a tensor (only its range is read). */
  async readBytes(name: string): Promise<Uint8Array> {
    const e = this.entry(name);
    const buf = new Uint8Array(e.end - e.begin);
    await readExactly(this.#open(), e.begin, buf, this.path);
    return buf;
  }

  /** A tensor's header entry (dtype, shape, where its bytes are); `BAD_CHECKPOINT` when absent. */
  entry(name: string): TensorEntry {
    const e = this.tensors.get(name);
    if (!e) {
      throw new RuntimeError("BAD_CHECKPOINT", `tensor ${name} is not in ${this.path}`, {
        hint: "the checkpoint does not match its config",
      });
    }
    return e;
  }

  #open(): Deno.FsFile {
    if (!this.#file) {
      throw new RuntimeError("BAD_CHECKPOINT", `${this.path} is closed`, {
        hint: "internal: reopen the checkpoint",
      });
    }
    return this.#file;
  }

  /** A tensor converted to float32. */
  async read(name: string): Promise<LoadedTensor> {
    const t = await this.readRaw(name);
    return { name, shape: t.shape, data: toFloat32(t.dtype, t.bytes!, name) };
  }

  /** A tensor as stored, read into memory. */
  async readRaw(name: string): Promise<RawTensor> {
    const bytes = await this.readBytes(name);
    const e = this.entry(name);
    return { name, ...storedInMemory(e.shape, e.dtype, bytes) };
  }

  /**
   * A tensor as stored whose bytes are read from the file when asked, synchronously (while the
   * file is open; no other read of this file may be in flight then: the file has one position).
   */
  lazy(name: string): RawTensor {
    const e = this.entry(name);
    const path = this.path;
    return {
      name,
      shape: e.shape,
      dtype: e.dtype,
      byteLength: e.end - e.begin,
      readInto: (offset, into) => {
        if (offset < 0 || offset + into.length > e.end - e.begin) {
          throw new RangeError(`${name}: bytes [${offset}, ${offset + into.length}) of ${e.end - e.begin}`);
        }
        const file = this.#open();
        file.seekSync(e.begin + offset, Deno.SeekMode.Start);
        for (let off = 0; off < into.length;) {
          const n = file.readSync(into.subarray(off));
          if (n === null) {
            throw badFile(path, `unexpected end of file at byte ${e.begin + offset + off}`);
          }
          off += n;
        }
      },
    };
  }

  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/** Tensors of a checkpoint across shard files; files open lazily and stay open until `close()`. */
export class CheckpointTensors {
  readonly #files = new Map<string, Promise<SafetensorsFile>>();

  /**
   * @param weightMap tensor name → shard file name (from the index; for a single file, every name → "model.safetensors")
   * @param pathOf shard file name → local path
   */
  constructor(readonly weightMap: ReadonlyMap<string, string>, readonly pathOf: (file: string) => string) {}

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  #open(file: string): Promise<SafetensorsFile> {
    let p = this.#files.get(file);
    if (!p) {
      p = SafetensorsFile.open(this.pathOf(file));
      this.#files.set(file, p);
    }
    return p;
  }

  async read(name: string): Promise<LoadedTensor> {
    return (await this.#fileOf(name)).read(name);
  }

  /** A tensor's header entry (dtype, shape, where its bytes are), without reading its data. */
  async entry(name: string): Promise<TensorEntry> {
    return (await this.#fileOf(name)).entry(name);
  }

  /** A tensor as stored, read into memory (the client head turns its table into float16 there). */
  async readRaw(name: string): Promise<RawTensor> {
    return (await this.#fileOf(name)).readRaw(name);
  }

  /** A tensor as stored, read from its file when asked (`SafetensorsFile.lazy`; until `close()`). */
  async lazy(name: string): Promise<RawTensor> {
    return (await this.#fileOf(name)).lazy(name);
  }

  #fileOf(name: string): Promise<SafetensorsFile> {
    const file = this.weightMap.get(name);
    if (!file) {
      throw new RuntimeError("BAD_CHECKPOINT", `tensor ${name} is not in the checkpoint`, {
        hint: "the checkpoint does not match its config.json (wrong model type or a partial upload?)",
        details: { name },
      });
    }
    return this.#open(file);
  }

  async close(): Promise<void> {
    for (const p of this.#files.values()) {
      try {
        (await p).close();
      } catch {
        // opening failed; nothing to close
      }
    }
    this.#files.clear();
  }
}
