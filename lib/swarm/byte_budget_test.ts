import assert from "node:assert/strict";
import { ByteBudget } from "./byte_budget.ts";

Deno.test("ByteBudget: takes what fits, refuses what does not (taking nothing), gives back", () => {
  const b = new ByteBudget(100);
  assert.equal(b.take(60), true);
  assert.equal(b.take(50), false);
  assert.equal(b.held, 60);
  assert.equal(b.take(40), true);
  b.give(100);
  assert.equal(b.held, 0);
  b.give(5);
  assert.equal(b.held, 0, "never below zero");
  assert.throws(() => new ByteBudget(0), /integer > 0, got 0/);
});
