import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { pinnedSpan } from "./pinned_span.ts";

Deno.test("pinned span: none, inside the model, past its end", () => {
  assert.equal(pinnedSpan({}, 24), undefined);
  assert.deepEqual(pinnedSpan({ blockIndices: { start: 20, end: 24 } }, 24), { start: 20, end: 24 });
  assert.throws(
    () => pinnedSpan({ blockIndices: { start: 20, end: 25 } }, 24),
    (e: unknown) =>
      e instanceof ConfigError && e.code === "BLOCK_INDICES_INVALID" &&
      /20:25 is past the model's 24 blocks/.test(e.message) &&
      /0 ≤ a < b ≤ 24/.test(e.hint ?? ""),
  );
});
