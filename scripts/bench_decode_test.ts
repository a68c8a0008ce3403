import assert from "node:assert/strict";
import { measureDecode } from "./bench_decode.ts";

Deno.test("bench decode: both ways give the same text, and the figures are per token", () => {
  const r = measureDecode(300, 1);
  assert.equal(r.tokens, 300);
  assert.equal(r.same_text, true);
  assert.ok(r.full_us_per_token > 0 && r.incremental_us_per_token > 0);
  const ratio = r.full_us_per_token / r.incremental_us_per_token;
  assert.ok(Math.abs(r.ratio - ratio) <= 0.05 * ratio + 0.1, `ratio ${r.ratio} for ${ratio}`);
});
