import assert from "node:assert/strict";
import { readTensorData, roundToF16, tensor, writeTensorData } from "./tensor_codec.ts";

Deno.test("tensor codec: f32 and f16 little-endian bytes", () => {
  const t = tensor(new Float32Array([1, -2, 0.5]), [3]);
  const out = new Uint8Array(12);
  writeTensorData(t, out);
  assert.deepEqual(readTensorData(out, "f32"), t.data);
  const out16 = new Uint8Array(6);
  writeTensorData({ ...t, dtype: "f16" }, out16);
  assert.deepEqual([...out16.subarray(0, 2)], [0x00, 0x3c]); // 1.0 in half precision
  assert.deepEqual(readTensorData(out16, "f16"), t.data);
  assert.deepEqual(roundToF16(new Float32Array([1 / 3]))[0], 0.333251953125);
});

Deno.test("tensor codec: decode copies into an aligned array (odd offsets are fine)", () => {
  const buf = new Uint8Array(9);
  new DataView(buf.buffer).setFloat32(1, 3.25, true);
  new DataView(buf.buffer).setFloat32(5, -1, true);
  const got = readTensorData(buf.subarray(1), "f32");
  assert.deepEqual([...got], [3.25, -1]);
  assert.throws(() => readTensorData(new Uint8Array(3), "f32"), /multiple of 4/);
  assert.throws(() => tensor(new Float32Array(3), [2, 2]), /does not match/);
});

Deno.test("readTensorData copies out of a Node Buffer that is a view into a shared pool", async () => {
  const { Buffer } = await import("node:buffer");
  const pool = Buffer.alloc(64);
  const f = new Float32Array([1, 2, 3, 4]);
  const view = pool.subarray(8, 24);
  view.set(new Uint8Array(f.buffer));
  assert.deepEqual(readTensorData(view, "f32"), f);
  const h = new Uint8Array(Float16Array.from([0.5, -2]).buffer);
  const view16 = pool.subarray(30, 34);
  view16.set(h);
  assert.deepEqual(readTensorData(view16, "f16"), new Float32Array([0.5, -2]));
});
