import assert from "node:assert/strict";
import { Backoff, retry } from "./backoff.ts";

Deno.test("backoff grows by the factor up to the cap, resets", () => {
  const b = new Backoff({ initialMs: 100, factor: 2, maxMs: 500, jitter: 0 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 500, 500]);
  b.reset();
  assert.equal(b.next(), 100);
});

Deno.test("backoff jitter stays within its fraction", () => {
  const lo = new Backoff({ initialMs: 1000, jitter: 0.2, random: () => 0 });
  const hi = new Backoff({ initialMs: 1000, jitter: 0.2, random: () => 0.999999 });
  assert.equal(lo.next(), 800);
  assert.equal(hi.next(), 1200);
});

Deno.test("retry: succeeds after failures, gives up after attempts, honours retryIf", async () => {
  let n = 0;
  const seen: number[] = [];
  const v = await retry((attempt) => {
    n++;
    if (attempt < 3) return Promise.reject(new Error(`fail ${attempt}`));
    return Promise.resolve("ok");
  }, { initialMs: 1, jitter: 0, onRetry: (_e, a) => seen.push(a) });
  assert.equal(v, "ok");
  assert.equal(n, 3);
  assert.deepEqual(seen, [1, 2]);

  await assert.rejects(
    retry(() => Promise.reject(new Error("always")), { attempts: 2, initialMs: 1 }),
    /always/,
  );
  let calls = 0;
  await assert.rejects(
    retry(() => {
      calls++;
      return Promise.reject(new Error("fatal"));
    }, { attempts: 5, initialMs: 1, retryIf: () => false }),
    /fatal/,
  );
  assert.equal(calls, 1);
});
