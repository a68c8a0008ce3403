import assert from "node:assert/strict";
import { testRecord } from "../testing/mod.ts";
import { probeAddrs, RecordProber } from "./record_prober.ts";

Deno.test("probeAddrs: IP addresses no more internal than the source; never names", () => {
  const addrs = [
    "/ip4/127.0.0.1/tcp/1",
    "/ip4/10.0.0.2/tcp/1",
    "/ip4/8.8.8.8/tcp/1",
    "/ip6/::ffff:7f00:1/tcp/1",
    "/ip6/2606:4700::1/tcp/1",
    "/dns4/example.org/tcp/1",
    "/ip4/224.0.0.1/tcp/1",
    "/ip4/8.8.4.4/tcp/1/p2p/12D3KooWGzh5wF8AbpBkrSVgXSpkqKMXhhRSs7ryJmq8rYZyfw4c/p2p-circuit",
    "not a multiaddr",
  ];
  assert.deepEqual(probeAddrs(addrs, "1.1.1.1"), [addrs[2], addrs[4], addrs[7]]);
  assert.deepEqual(probeAddrs(addrs, "192.168.1.9"), [addrs[1], addrs[2], addrs[4], addrs[7]]);
  assert.deepEqual(probeAddrs(addrs, "127.0.0.1"), [
    addrs[0],
    addrs[1],
    addrs[2],
    addrs[3],
    addrs[4],
    addrs[7],
  ]);
  assert.deepEqual(probeAddrs(addrs, "::/64"), probeAddrs(addrs, "127.0.0.1"), "::1's group is loopback");
  assert.deepEqual(probeAddrs(addrs, "2606:4700::/64"), [addrs[2], addrs[4], addrs[7]]);
});

Deno.test("record prober: bounded concurrency, one try per peer per retry window, unroutable answered at once", async () => {
  const now = Date.now();
  const dials: Array<{ id: string; done: (ok: boolean) => void }> = [];
  const results: string[] = [];
  let onDial!: () => void;
  let onResult: (() => void) | undefined;
  const prober = new RecordProber({
    concurrency: 2,
    dial: (id) =>
      new Promise<void>((resolve, reject) => {
        dials.push({ id, done: (ok) => ok ? resolve() : reject(new Error("refused")) });
        onDial?.();
      }),
    onResult: (id, ok) => {
      results.push(`${id}:${ok}`);
      onResult?.();
    },
  });
  try {
    const rec = (id: string, addrs = ["/ip4/127.0.0.1/tcp/1"]) => testRecord(id, now, { addrs });
    assert.equal(prober.want(rec("a"), "127.0.0.1"), true);
    assert.equal(prober.want(rec("b"), "127.0.0.1"), true);
    assert.equal(prober.want(rec("c"), "127.0.0.1"), true);
    assert.equal(prober.want(rec("a"), "127.0.0.1"), false, "already being probed");
    assert.deepEqual(dials.map((d) => d.id), ["a", "b"], "two at once");
    assert.equal(prober.waiting, 1);
    assert.ok(prober.probing("a"));
    // a record whose addresses are all more internal than its source is not dialed at all
    assert.equal(prober.want(rec("d"), "8.8.8.8"), false);
    assert.deepEqual(results, ["d:false"]);
    const third = new Promise<void>((r) => (onDial = r));
    dials[0].done(true);
    await third;
    assert.deepEqual(dials.map((d) => d.id), ["a", "b", "c"]);
    assert.deepEqual(results, ["d:false", "a:true"]);
    assert.equal(prober.want(rec("a"), "127.0.0.1"), false, "tried within the retry window");
    const all = new Promise<void>((r) => (onResult = () => results.length === 4 && r()));
    dials[1].done(false);
    dials[2].done(true);
    await all;
  } finally {
    await prober.stop();
  }
  assert.deepEqual(results.sort(), ["a:true", "b:false", "c:true", "d:false"]);
  assert.deepEqual(prober.stats, { ok: 2, failed: 1, unroutable: 1 });
});
