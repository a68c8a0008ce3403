/**
 * `deno task bench:nat`: tokens/s of a 3-server swarm whose middle server is (1) public and
 * reached directly, (2) behind NAT and reached through a relay, (3) behind NAT with the session
 * hole punched — in one run, on the NAT test bed (tests/helpers/netns_bed.ts: network namespaces,
 * a MASQUERADE router, 198.18.0.0/15 only; needs root and iptables) — and what relaying costs its
 * operator: bytes through the relays' interfaces per generated token.
 *
 * The three paths run interleaved, run by run (routing is steered away from the other middle
 * server), so that load from other processes falls on all alike. The servers run the FakeBackend (no compute) with the hidden size of the model asked for, so the
 * figures are what the network paths cost; the bed's links have no latency (this machine has no
 * netem), so a relay's real cost, one more internet leg per step, does not show beyond its
 * processing. Results and method: docs/benchmarks.md ("NAT paths").
 *
 *   flock -x /tmp/plumise-heavy.lock deno task bench:nat [--hidden 1024] [--tokens 48] [--runs 5] [--json]
 * @module
 */
import { parseArgs } from "node:util";
import { BedSwarm } from "../tests/helpers/nat_bed_swarm.ts";
import { netnsAvailable, NetnsBed } from "../tests/helpers/netns_bed.ts";

const args = parseArgs({
  options: {
    hidden: { type: "string", default: "1024" },
    tokens: { type: "string", default: "48" },
    runs: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  },
});
const H = Number(args.values.hidden), N = Number(args.values.tokens), RUNS = Number(args.values.runs);
const PROMPT = "a prompt of some length for the prefill";

const can = await netnsAvailable();
if (!can.ok) {
  console.error(`bench:nat needs the NAT test bed: ${can.reason}`);
  Deno.exit(2);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const bed = await NetnsBed.create({
  publics: ["pub1", "pub2", "mid", "relay1", "relay2", "client"],
  routers: [{ name: "home" }],
  privates: [{ name: "priv", router: "home" }],
});
const swarm = new BedSwarm(bed);
const results: Record<string, { tokensPerSecond: number[]; relayBytesPerToken?: number[]; paths: string[] }> =
  {};
try {
  const off = { relayService: "off" as const };
  const base = { hiddenSize: H, totalBlocks: 9 };
  const pub1 = await swarm.start("pub1", {
    role: "server",
    ...base,
    blockIndices: { start: 0, end: 3 },
    nat: off,
  });
  const peers = [pub1.addr(bed)];
  const relay1 = await swarm.start("relay1", { role: "relay", initialPeers: peers });
  const relay2 = await swarm.start("relay2", { role: "relay", initialPeers: peers });
  await swarm.start("pub2", {
    role: "server",
    ...base,
    blockIndices: { start: 6, end: 9 },
    initialPeers: peers,
    nat: off,
  });

  const relayBytes = async () => (await bed.interfaceBytes("relay1")) + (await bed.interfaceBytes("relay2"));

  // the middle span twice: a public server, and one behind the router reached through the relays
  const mid = await swarm.start("mid", {
    role: "server",
    ...base,
    blockIndices: { start: 3, end: 6 },
    initialPeers: peers,
    nat: off,
  });
  const priv = await swarm.start("priv", {
    role: "server",
    ...base,
    blockIndices: { start: 3, end: 6 },
    initialPeers: [...peers, relay1.addr(bed), relay2.addr(bed)],
  });
  await priv.waitFor("record", (e) => e.usingRelay === true, 30_000, "the relayed record");
  const client = { role: "client" as const, hiddenSize: H, totalBlocks: 9, initialPeers: peers };
  const punching = await swarm.start("client", client);
  const relaying = await swarm.start("client", { ...client, nat: { holePunch: false } });
  // each path by steering routing away from the other middle server; interleaved run by run, so
  // that the machine's load (shared with others) falls on all three alike
  const variants: Array<[string, typeof punching, string, string]> = [
    ["direct", punching, mid.peerId, priv.peerId],
    ["relayed", relaying, priv.peerId, mid.peerId],
    ["punched", punching, priv.peerId, mid.peerId],
  ];
  for (const [name] of variants) results[name] = { tokensPerSecond: [], relayBytesPerToken: [], paths: [] };
  for (const [, c, , avoid] of variants) {
    await swarm.generate(c, { prompt: PROMPT, maxNewTokens: 8, servers: 4, avoid: [avoid] }); // warm-up
  }
  for (let i = 0; i < RUNS; i++) {
    for (const [name, c, middle, avoid] of variants) {
      const before = await relayBytes();
      const done = await swarm.generate(c, { prompt: PROMPT, maxNewTokens: N, servers: 4, avoid: [avoid] });
      const bytes = (await relayBytes()) - before;
      const r = results[name];
      r.tokensPerSecond.push(N / ((done.ms as number) / 1000));
      r.relayBytesPerToken!.push(bytes / N);
      r.paths = (done.paths as Array<{ peer: string; path: string }>).filter((p) => p.peer === middle)
        .map((p) => p.path);
    }
  }
} finally {
  await swarm.stop();
  await bed.destroy();
}

const summary = Object.fromEntries(
  Object.entries(results).map(([k, r]) => [k, {
    tokensPerSecond: Math.round(median(r.tokensPerSecond) * 10) / 10,
    range: [Math.round(Math.min(...r.tokensPerSecond)), Math.round(Math.max(...r.tokensPerSecond))],
    relayBytesPerToken: r.relayBytesPerToken ? Math.round(median(r.relayBytesPerToken)) : undefined,
    middlePath: r.paths.join(","),
  }]),
);
if (args.values.json) console.log(JSON.stringify({ hidden: H, tokens: N, runs: RUNS, results: summary }));
else {
  console.log(
    `3-server swarm, middle server direct / relayed / punched; hidden ${H}, ${N} new tokens, ${RUNS} runs`,
  );
  for (const [k, v] of Object.entries(summary)) {
    console.log(
      `${k.padEnd(8)} ${String(v.tokensPerSecond).padStart(7)} tok/s (median; ${v.range[0]}–${v.range[1]})` +
        `  relays carried ${v.relayBytesPerToken} B/token  middle path: ${v.middlePath}`,
    );
  }
}
