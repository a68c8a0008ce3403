import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { concatRows, pickRows, type Rows, storedRows } from "./weight_rows.ts";

/** All of `w` in float32 (a copy). */
const allRows = (w: Rows) => w.read(0, w.rows).slice();
import { storedInMemory, toFloat32 } from "./safetensors.ts";

/** `values` stored as `dtype` (F32, F16, or BF16 truncated), as a checkpoint holds it. */
function stored(values: Float32Array, dtype: string) {
  const n = [values.length];
  if (dtype === "F32") return storedInMemory(n, dtype, new Uint8Array(values.slice().buffer));
  if (dtype === "F16") return storedInMemory(n, dtype, new Uint8Array(Float16Array.from(values).buffer));
  const u = new Uint32Array(values.slice().buffer);
  return storedInMemory(n, dtype, new Uint8Array(Uint16Array.from(u, (x) => x >>> 16).buffer));
}

Deno.test("storedRows: any range of rows is the same as the whole tensor converted, in every dtype", () => {
  const rows = 7, cols = 5, w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i) * 3);
  for (const dtype of ["F32", "F16", "BF16"]) {
    const x = stored(w, dtype), whole = toFloat32(dtype, x.bytes!);
    const r = storedRows(x, rows, cols);
    assert.deepEqual([r.rows, r.cols], [rows, cols]);
    for (const [a, b] of [[0, 7], [0, 1], [3, 6], [6, 7]]) {
      assert.deepEqual(
        [...r.read(a, b)],
        [...whole.subarray(a * cols, b * cols)],
        `${dtype} rows ${a}..${b}`,
      );
    }
    assert.deepEqual(allRows(r), whole);
  }
  // unaligned bytes (a tensor at an odd offset of a buffer) read the same
  const x = stored(w, "BF16"), odd = new Uint8Array(x.byteLength + 1);
  odd.set(x.bytes!, 1);
  const r = storedRows(storedInMemory(x.shape, "BF16", odd.subarray(1)), rows, cols);
  assert.deepEqual(allRows(r), toFloat32("BF16", x.bytes!));
  // a tensor read from its file when asked reads the same
  const lazy = { ...x, bytes: undefined };
  assert.deepEqual(allRows(storedRows(lazy, rows, cols)), toFloat32("BF16", x.bytes!));
  assert.deepEqual([...storedRows(lazy, rows, cols).read(2, 4)], [
    ...toFloat32("BF16", x.bytes!).subarray(10, 20),
  ]);
  assert.throws(
    () => storedRows(storedInMemory([2, 2], "I8", new Uint8Array(4)), 2, 2, "w").read(0, 1),
    (e: unknown) =>
      e instanceof RuntimeError && e.code === "UNSUPPORTED_MODEL" && /w has dtype I8/.test(e.message),
  );
});

Deno.test("concatRows and pickRows: rows across parts and in any order", () => {
  const m = (rows: number, base: number) =>
    storedRows(stored(Float32Array.from({ length: rows * 2 }, (_, i) => base + i), "F32"), rows, 2);
  const c = concatRows([m(2, 0), m(3, 100), m(1, 200)]);
  assert.deepEqual([c.rows, c.cols], [6, 2]);
  assert.deepEqual([...allRows(c)], [0, 1, 2, 3, 100, 101, 102, 103, 104, 105, 200, 201]);
  assert.deepEqual([...c.read(1, 5)], [2, 3, 100, 101, 102, 103, 104, 105]);
  assert.throws(
    () => concatRows([m(1, 0), storedRows(stored(new Float32Array(3), "F32"), 1, 3)]),
    /widths 2 and 3/,
  );
  const p = pickRows(c, [5, 0, 3]);
  assert.deepEqual([...allRows(p)], [200, 201, 0, 1, 102, 103]);
  assert.deepEqual([...p.read(1, 2)], [0, 1]);
});
