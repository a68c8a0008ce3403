/**
 * Per-hop latency of a decode step over libp2p on loopback (p50/p99 over N steps) vs the raw
 * runtime time of the same step, in one run. Blocks: FakeBackend (H=1024, 4 blocks) unless the
 * real runtime is wired in. Run: deno run -A scripts/swarm_latency.ts [steps=500] [hidden=1024]
 * @module
 */
import { FakeBackend, fakeHidden } from "../lib/runtime/fake_backend.ts";
import { ephemeralIdentity } from "../lib/swarm/peer_identity.ts";
import { SwarmPeer } from "../lib/swarm/swarm_peer.ts";
import { SwarmServer } from "../lib/swarm/swarm_server.ts";
import { Metrics } from "../lib/util/metrics.ts";

const steps = Number(Deno.args[0] ?? 500);
const H = Number(Deno.args[1] ?? 1024);
const rt = new FakeBackend({
  modelId: "m",
  numBlocks: 4,
  hiddenSize: H,
  maxLength: steps + 64,
  cacheTokens: 1 << 22,
});
await rt.start();
const server = new SwarmServer({
  privateKey: (await ephemeralIdentity()).privateKey,
  host: "127.0.0.1",
  port: 0,
  model: "m",
  weights: "fp32",
  version: "bench",
  metrics: new Metrics(),
  dht: false,
});
await server.start();
await server.serve(rt, { throughput: 1, inferenceRps: 1, forwardRps: 1, networkRps: 1 });
const peer = new SwarmPeer({
  privateKey: (await ephemeralIdentity()).privateKey,
  noListen: true,
  dht: false,
});
await peer.start();
const s = await peer.client(server.peer.multiaddrs()[0]).openInference({
  sessionId: "bench",
  model: "m",
  start: 0,
  end: 4,
  maxLength: steps + 64,
  batch: 1,
});
const local = await rt.openSession({ start: 0, end: 4, maxLength: steps + 64, batch: 1 });
const hop: number[] = [];
const compute: number[] = [];
const raw: number[] = [];
for (let i = 0; i < steps + 20; i++) {
  const x = fakeHidden(1, 1, H, i);
  const t0 = performance.now();
  const r = await s.step(x);
  const t1 = performance.now();
  await local.step(x);
  const t2 = performance.now();
  if (i >= 20) {
    hop.push(t1 - t0);
    compute.push(r.computeMs);
    raw.push(t2 - t1);
  }
}
const q = (a: number[], p: number) =>
  [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p * a.length))];
const f = (a: number[]) => `p50 ${q(a, 0.5).toFixed(3)} ms, p99 ${q(a, 0.99).toFixed(3)} ms`;
console.log(
  `decode step, H=${H} (f32, ${H * 4} bytes each way), ${steps} steps, loopback libp2p (noise+yamux)`,
);
console.log(`  per-hop round trip (client view): ${f(hop)}`);
console.log(`  server-side compute (computeMs):  ${f(compute)}`);
console.log(`  raw runtime step (same process):  ${f(raw)}`);
console.log(`  overhead (hop − compute) p50:     ${(q(hop, 0.5) - q(compute, 0.5)).toFixed(3)} ms`);
await s.close();
await peer.stop();
await server.stop();
await rt.stop();
Deno.exit(0);
