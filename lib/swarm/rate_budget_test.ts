import assert from "node:assert/strict";
import { RateBudget } from "./rate_budget.ts";

Deno.test("rate budget: a burst at once, then the refill per minute, per key", () => {
  let now = 0;
  const b = new RateBudget({ burst: 3, perMinute: 60, now: () => now });
  assert.deepEqual([b.take("a"), b.take("a"), b.take("a"), b.take("a")], [true, true, true, false]);
  assert.equal(b.take("b"), true, "another key has its own budget");
  now += 1_000; // one more a second
  assert.deepEqual([b.take("a"), b.take("a")], [true, false]);
  now += 3_600_000; // never more than the burst
  assert.equal(b.available("a"), 3);
  assert.equal(b.take("a", 4), false);
  assert.equal(b.available("a"), 3, "a refused take spends nothing");
});

Deno.test("rate budget: at most maxKeys remembered, full buckets forgotten first", () => {
  let now = 0;
  const b = new RateBudget({ burst: 2, perMinute: 1, maxKeys: 3, now: () => now });
  b.take("spent1", 2);
  b.take("spent2", 2);
  b.available("full");
  b.take("new"); // room is made by forgetting "full", which held nothing spent
  assert.equal(b.size, 3);
  assert.equal(b.available("spent1"), 0, "a spent bucket is kept");
  now += 1;
  assert.throws(() => new RateBudget({ burst: 0, perMinute: 1 }), RangeError);
});
