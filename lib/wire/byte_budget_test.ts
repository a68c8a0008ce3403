import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { ByteBudget } from "./byte_budget.ts";

Deno.test("ByteBudget: takes what fits, refuses what does not (taking nothing), gives back", () => {
  const b = new ByteBudget(100);
  assert.equal(b.take(60), true);
  assert.equal(b.take(50), false);
  assert.equal(b.held(), 60);
  assert.equal(b.take(40), true);
  b.give(100);
  assert.equal(b.held(), 0);
  b.give(5);
  assert.equal(b.held(), 0, "never below zero");
  assert.throws(
    () => new ByteBudget(0),
    (e) => e instanceof ConfigError && /integer > 0, got 0/.test(e.message),
  );
});

Deno.test("ByteBudget: one key cannot take more than its share; others still can; a key gives back only its own", () => {
  const b = new ByteBudget(100, 40);
  assert.equal(b.take(40, "p1"), true);
  assert.equal(b.take(1, "p1"), false, "p1's share is full");
  assert.equal(b.take(40, "p2"), true, "p2 is served");
  assert.equal(b.held(), 80);
  b.give(100, "p1"); // more than it took: only its own comes back
  assert.equal(b.held(), 40);
  assert.equal(b.held("p1"), 0);
  assert.equal(b.held("p2"), 40);
});
