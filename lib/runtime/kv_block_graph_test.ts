import assert from "node:assert/strict";
import { alibiSlopes } from "./block_graph.ts";
import { alibiBias, toFloat16 } from "./kv_block_graph.ts";

Deno.test("alibiBias: slope × (key position − query position) for the last S queries of a sequence", () => {
  const slopes = Float32Array.from(alibiSlopes(3));
  for (const [s, total] of [[1, 1], [1, 7], [3, 3], [4, 9]]) {
    const b = alibiBias(slopes, s, total);
    assert.equal(b.length, 3 * s * total);
    for (let h = 0; h < 3; h++) {
      for (let i = 0; i < s; i++) {
        for (let j = 0; j < total; j++) {
          const want = Math.fround(slopes[h] * (j - (total - s + i)));
          assert.equal(b[(h * s + i) * total + j], want, `h ${h} i ${i} j ${j} (s ${s}, total ${total})`);
        }
      }
    }
  }
  // into a reused buffer: a view of it, the rest untouched
  const scratch = new Float32Array(3 * 10).fill(7);
  const v = alibiBias(slopes, 1, 4, scratch);
  assert.equal(v.buffer, scratch.buffer);
  assert.equal(v.length, 12);
  assert.equal(scratch[12], 7);
});

Deno.test("toFloat16: round to nearest even, subnormals, overflow and NaN", () => {
  const h = toFloat16(
    Float32Array.of(0, -0, 1, -2, 65504, 65520, 1e-8, 6.1035156e-5, 5.96e-8, 1 + 2 ** -11, NaN, Infinity),
  );
  assert.deepEqual(
    [...h].map((x) => x.toString(16)),
    ["0", "8000", "3c00", "c000", "7bff", "7c00", "0", "400", "1", "3c00", "7e00", "7c00"],
  );
});
