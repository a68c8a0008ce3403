import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { BudgetShare, ByteBudget, FREE_PENDING_BYTES } from "./byte_budget.ts";

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

Deno.test("BudgetShare: takes what is held beyond the free allowance, gives back what is no longer, refuses past the budget", () => {
  const budget = new ByteBudget(100_000, 50_000);
  const a = new BudgetShare(budget, "p"), b = new BudgetShare(budget, "p");
  assert.equal(a.hold(FREE_PENDING_BYTES), true);
  assert.equal(budget.held(), 0, "the free allowance is not taken");
  assert.equal(a.hold(FREE_PENDING_BYTES + 30_000), true);
  assert.equal(budget.held("p"), 30_000);
  // the key's share: 20 000 left
  assert.equal(b.hold(FREE_PENDING_BYTES + 30_000), false);
  assert.equal(budget.held("p"), 30_000, "a refusal takes nothing");
  assert.equal(a.hold(FREE_PENDING_BYTES + 10_000), true);
  assert.equal(budget.held("p"), 10_000, "what is no longer held is given back");
  a.release();
  a.release();
  assert.equal(budget.held(), 0);
});
