/**
 * Tensors on the wire: raw little-endian `f32` or `f16` values, row-major, with a shape.
 * In memory a tensor's values are always a `Float32Array` (f16 is widened on decode and
 * rounded on encode), so the runtime only ever sees fp32.
 * @module
 */
import { WireError } from "../errors.ts";

export type WireDType = "f32" | "f16";
export const WIRE_DTYPES: readonly WireDType[] = ["f32", "f16"];

/** A dense tensor: `data.length` equals the product of `shape`. */
export interface Tensor {
  /** How the values travel on the wire (and were received). */
  readonly dtype: WireDType;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Bytes per element on the wire. */
export function dtypeSize(dtype: WireDType): number {
  return dtype === "f32" ? 4 : 2;
}

/** Product of a shape (1 for rank 0). */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Builds a tensor, checking that `data` matches `shape`. */
export function tensor(data: Float32Array, shape: readonly number[], dtype: WireDType = "f32"): Tensor {
  const n = numElements(shape);
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0) || n !== data.length) {
    throw new WireError(
      "BAD_FRAME",
      `tensor shape [${shape.join(",")}] does not match ${data.length} values`,
      {
        hint: "pass a Float32Array whose length is the product of the shape",
      },
    );
  }
  return { dtype, shape: [...shape], data };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Encodes a tensor's values into `out` (exactly `numElements × dtypeSize` bytes) as little-endian. */
export function writeTensorData(t: Tensor, out: Uint8Array): void {
  const n = t.data.length;
  if (out.byteLength !== n * dtypeSize(t.dtype)) {
    throw new RangeError(`tensor needs ${n * dtypeSize(t.dtype)} bytes, buffer has ${out.byteLength}`);
  }
  if (LITTLE_ENDIAN) {
    const src = t.dtype === "f32" ? t.data : Float16Array.from(t.data);
    out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return;
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let i = 0; i < n; i++) {
    if (t.dtype === "f32") view.setFloat32(i * 4, t.data[i], true);
    else view.setFloat16(i * 2, t.data[i], true);
  }
}

/** Decodes raw little-endian bytes into a fresh, aligned Float32Array (copying; never a view of `bytes`). */
export function readTensorData(bytes: Uint8Array, dtype: WireDType): Float32Array {
  const size = dtypeSize(dtype);
  if (bytes.byteLength % size !== 0) {
    throw new WireError(
      "BAD_FRAME",
      `tensor payload of ${bytes.byteLength} bytes is not a multiple of ${size}`,
      {
        hint: "the peer sent a truncated tensor",
      },
    );
  }
  const n = bytes.byteLength / size;
  if (LITTLE_ENDIAN) {
    // A fresh buffer at offset 0: `bytes.slice()` on a Node Buffer is a view into a shared pool.
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    if (dtype === "f32") return new Float32Array(copy.buffer, 0, n);
    return Float32Array.from(new Float16Array(copy.buffer, 0, n));
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = dtype === "f32" ? view.getFloat32(i * 4, true) : view.getFloat16(i * 2, true);
  }
  return out;
}

/** Rounds fp32 values through f16 (what the other side sees after an f16 hop). */
export function roundToF16(data: Float32Array): Float32Array {
  return Float32Array.from(Float16Array.from(data));
}
