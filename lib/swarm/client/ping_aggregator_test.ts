import assert from "node:assert/strict";
import { PingAggregator } from "./ping_aggregator.ts";

Deno.test("PingAggregator smooths RTTs with an EMA and forgets expired entries", () => {
  let now = 0;
  const p = new PingAggregator({ alpha: 0.5, expiryMs: 1000, now: () => now });
  assert.equal(p.rtt("a"), undefined);
  p.observe("a", 10);
  assert.equal(p.rtt("a"), 10);
  p.observe("a", 20);
  assert.equal(p.rtt("a"), 15);
  p.fail("a");
  assert.equal(p.rtt("a"), Infinity);
  p.observe("a", 4);
  assert.equal(p.rtt("a"), 4, "a success after a failure restarts the average");
  now = 1500;
  assert.equal(p.rtt("a"), undefined);
  p.observe("a", -1);
  p.observe("a", NaN);
  assert.equal(p.rtt("a"), undefined, "invalid samples are ignored");
  assert.throws(() => new PingAggregator({ alpha: 0 }), /alpha/);
});

Deno.test("PingAggregator.measure records successes, failures and timeouts without throwing", async () => {
  const p = new PingAggregator();
  await p.measure(
    [{ peerId: "ok" }, { peerId: "bad" }, { peerId: "hang" }],
    (peer, { signal }) => {
      if (peer.peerId === "ok") return Promise.resolve(3);
      if (peer.peerId === "bad") return Promise.reject(new Error("refused"));
      return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
    },
    { timeoutMs: 20 },
  );
  assert.equal(p.rtt("ok"), 3);
  assert.equal(p.rtt("bad"), Infinity);
  assert.equal(p.rtt("hang"), Infinity);
});
