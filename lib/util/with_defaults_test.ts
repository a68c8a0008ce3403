import assert from "node:assert/strict";
import { withDefaults } from "./with_defaults.ts";

Deno.test("withDefaults: an option left undefined keeps its default; others replace it", () => {
  const defaults = { pollMs: 1000, timeoutMs: 120_000, simulate: true };
  const out = withDefaults(defaults, { pollMs: undefined, timeoutMs: 5, simulate: false });
  assert.deepEqual(out, { pollMs: 1000, timeoutMs: 5, simulate: false });
  // the plain spread this replaces loses the default
  assert.equal({ ...defaults, ...{ pollMs: undefined } }.pollMs, undefined);
  assert.equal(defaults.timeoutMs, 120_000, "the defaults object is not changed");
});

Deno.test("withDefaults: no options, and falsy values that are not undefined, are kept", () => {
  assert.deepEqual(withDefaults({ a: 1, b: "x" }), { a: 1, b: "x" });
  assert.deepEqual(withDefaults({ a: 1, b: "x", c: true }, { a: 0, b: "", c: false }), {
    a: 0,
    b: "",
    c: false,
  });
});
