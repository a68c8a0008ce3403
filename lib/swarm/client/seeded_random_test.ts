import assert from "node:assert/strict";
import { SeededRandom } from "./seeded_random.ts";

Deno.test("SeededRandom is reproducible per seed and differs between seeds", () => {
  const a = new SeededRandom(42), b = new SeededRandom(42), c = new SeededRandom(43);
  const xs = Array.from({ length: 50 }, () => a.next());
  assert.deepEqual(Array.from({ length: 50 }, () => b.next()), xs);
  assert.notDeepEqual(Array.from({ length: 50 }, () => c.next()), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
});

Deno.test("SeededRandom is roughly uniform and accepts large and negative seeds", () => {
  const r = new SeededRandom(2 ** 40 + 7);
  const bins = new Array(10).fill(0);
  for (let i = 0; i < 20_000; i++) bins[Math.floor(r.next() * 10)]++;
  for (const n of bins) assert.ok(n > 1700 && n < 2300, `bin count ${n}`);
  assert.notEqual(new SeededRandom(-5).next(), new SeededRandom(5).next());
  assert.throws(() => new SeededRandom(1.5), /safe integer/);
});
