import assert from "node:assert/strict";
import { show } from "./_params.ts";

Deno.test("show: small values written out, large arrays and objects described, long text cut", () => {
  assert.equal(show(["a", 3]), '["a",3]');
  assert.equal(show({ a: 1 }), '{"a":1}');
  assert.equal(show(undefined), "undefined");
  assert.equal(show(null), "null");
  assert.equal(show(1.5), "1.5");
  assert.equal(show(new Array(100_000).fill(0)), "an array of 100000 items");
  const wide = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, i]));
  assert.equal(show(wide), 'an object with 50 keys ("k0", "k1", "k2", ...)');
  assert.equal(show("x".repeat(1e6)).length, 60);
  assert.equal(show([["deep", ["deeper"]], 1]), '[["deep",["deeper"]],1]');
});
