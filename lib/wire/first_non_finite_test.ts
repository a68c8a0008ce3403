import assert from "node:assert/strict";
import { firstNonFinite } from "./first_non_finite.ts";

Deno.test("firstNonFinite finds the first NaN or infinity, -1 when there is none", () => {
  assert.equal(firstNonFinite(new Float32Array(0)), -1);
  assert.equal(firstNonFinite(Float32Array.of(0, -1e38, 3.4e38, -0)), -1);
  assert.equal(firstNonFinite(Float32Array.of(1, NaN, Infinity)), 1);
  assert.equal(firstNonFinite(Float32Array.of(1, 2, -Infinity)), 2);
  // float32 overflow: a value past its range is stored as infinity
  assert.equal(firstNonFinite(Float32Array.of(1e39)), 0);
});
