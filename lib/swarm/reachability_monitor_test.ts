import assert from "node:assert/strict";
import type { ReachMessage } from "../wire/mod.ts";
import { ReachabilityMonitor } from "./reachability_monitor.ts";

function probe(
  answers: Record<string, (port: number | undefined) => ReachMessage>,
  hosts: Record<string, string>,
) {
  const asked: string[] = [];
  return {
    asked,
    probe: {
      candidates: () => Object.entries(hosts).map(([peerId, host]) => ({ peerId, host })),
      ask(peerId: string, port: number | undefined) {
        asked.push(peerId);
        const a = answers[peerId];
        return a ? Promise.resolve(a(port)) : Promise.reject(new Error("protocol not supported"));
      },
      listenPort: () => 4001,
    },
  };
}

Deno.test("reachability monitor: decides from the peers it asks and tells listeners of the change", async () => {
  const seen: string[] = [];
  const p = probe({
    a: () => ({ type: "reach", host: "81.2.69.1", dialed: false }),
    b: () => ({ type: "reach", host: "81.2.69.1", dialed: false }),
    c: () => ({ type: "reach", host: "81.2.69.1", dialed: false }),
  }, { a: "81.2.69.11", b: "81.2.69.12", c: "81.2.69.12", local: "127.0.0.1", lan: "192.168.1.4" });
  const m = new ReachabilityMonitor({ probe: p.probe });
  m.onChange((s, prev) => seen.push(`${prev.status}->${s.status}`));
  const s = await m.check();
  assert.equal(s.status, "private");
  assert.equal(s.observedHost, "81.2.69.1");
  assert.deepEqual(seen, ["unknown->private"]);
  // one per host, internet hosts only: the loopback and LAN peers are never asked
  assert.equal(p.asked.length, 2);
  assert.ok(!p.asked.includes("local") && !p.asked.includes("lan"));
  await m.check();
  assert.deepEqual(seen, ["unknown->private"], "no change, no event");
  await m.stop();
});

Deno.test("reachability monitor: a peer seeing a new address drops the old verdicts (the network changed)", async () => {
  let host = "81.2.69.1";
  let dialed = false;
  const p = probe({
    a: () => ({ type: "reach", host, dialed }),
    b: () => ({ type: "reach", host, dialed }),
  }, { a: "81.2.69.11", b: "81.2.69.12" });
  const m = new ReachabilityMonitor({ probe: p.probe });
  assert.equal((await m.check()).status, "private");
  // moved to a network with a public address: the old "private" verdicts are about another address
  host = "62.3.4.9";
  dialed = true;
  const s = await m.check();
  assert.equal(s.status, "public");
  assert.equal(s.observedHost, "62.3.4.9");
  assert.equal(s.counted, 2);
  await m.stop();
});

Deno.test("reachability monitor: peers that fail or do not dial back leave it unknown", async () => {
  const p = probe({ a: () => ({ type: "reach", host: "81.2.69.1", reason: "busy" }) }, {
    a: "81.2.69.11",
    b: "81.2.69.12",
  });
  const m = new ReachabilityMonitor({ probe: p.probe });
  const s = await m.check();
  assert.equal(s.status, "unknown");
  assert.equal(s.counted, 0);
  await m.stop();
});
