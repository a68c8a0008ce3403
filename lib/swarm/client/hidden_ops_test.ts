import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { concatTokens, hidden, sliceTokens, tokenCount } from "./hidden_ops.ts";

const seq = (n: number, from = 0) => Float32Array.from({ length: n }, (_, i) => i + from);

Deno.test("hidden() validates the shape against the data", () => {
  assert.deepEqual(hidden(seq(6), [1, 3, 2]).shape, [1, 3, 2]);
  assert.throws(
    () => hidden(seq(5), [1, 3, 2]),
    (e) => e instanceof SwarmError && /5 floats/.test(e.message),
  );
  assert.throws(() => hidden(seq(0), [1, -1, 2]), /non-negative/);
});

Deno.test("concatTokens with batch 1 appends along tokens", () => {
  const a = hidden(seq(4), [1, 2, 2]);
  const b = hidden(seq(2, 100), [1, 1, 2]);
  const c = concatTokens([a, b]);
  assert.deepEqual(c.shape, [1, 3, 2]);
  assert.deepEqual(Array.from(c.data), [0, 1, 2, 3, 100, 101]);
  assert.equal(tokenCount([a, b]), 3);
});

Deno.test("concatTokens with batch 2 interleaves rows", () => {
  // a: [2,1,2] rows [0,1] and [2,3]; b: [2,2,2] rows [10..13] and [14..17]
  const a = hidden(seq(4), [2, 1, 2]);
  const b = hidden(seq(8, 10), [2, 2, 2]);
  const c = concatTokens([a, b]);
  assert.deepEqual(c.shape, [2, 3, 2]);
  assert.deepEqual(Array.from(c.data), [0, 1, 10, 11, 12, 13, 2, 3, 14, 15, 16, 17]);
  assert.deepEqual(Array.from(sliceTokens(c, 1, 3).data), [10, 11, 12, 13, 14, 15, 16, 17]);
});

Deno.test("concatTokens refuses mismatched hidden sizes; sliceTokens refuses bad ranges", () => {
  assert.throws(
    () => concatTokens([hidden(seq(2), [1, 1, 2]), hidden(seq(3), [1, 1, 3])]),
    /cannot concatenate/,
  );
  assert.throws(() => concatTokens([]), /zero/);
  assert.throws(() => sliceTokens(hidden(seq(4), [1, 2, 2]), 1, 3), /outside/);
  assert.deepEqual(Array.from(sliceTokens(hidden(seq(6), [1, 3, 2]), 2, 3).data), [4, 5]);
});
