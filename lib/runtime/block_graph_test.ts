import assert from "node:assert/strict";
import { alibiSlopes, quantizeInt8, transpose2d } from "./block_graph.ts";

Deno.test("alibiSlopes: transformers' values for 8 heads and the extra odd powers for 6 heads", () => {
  assert.deepEqual(Array.from(alibiSlopes(8)), [1, 2, 3, 4, 5, 6, 7, 8].map((k) => 2 ** -k));
  const six = Array.from(alibiSlopes(6));
  // p = 4: (2^-2)^k for k = 1..4, then (2^-1)^k for k = 1, 3
  assert.deepEqual(six, [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]);
});

Deno.test("quantizeInt8: per-output-channel symmetric, transposed to [in, out], error ≤ scale/2", () => {
  const w = Float32Array.from([1, -2, 0.5, 0, 0, 0, 0.1, 0.2, -0.3]); // [3 out, 3 in]
  const { q, scale } = quantizeInt8(w, 3, 3);
  assert.deepEqual(Array.from(scale).map((s) => +s.toFixed(6)), [
    +(2 / 127).toFixed(6),
    1,
    +(0.3 / 127).toFixed(6),
  ]);
  for (let o = 0; o < 3; o++) {
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(q[i * 3 + o] * scale[o] - w[o * 3 + i]) <= scale[o] / 2 + 1e-7);
    }
  }
  assert.equal(q[1 * 3 + 0], -127);
  assert.deepEqual(Array.from(transpose2d(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3)), [1, 4, 2, 5, 3, 6]);
});
