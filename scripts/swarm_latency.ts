/**
 * Per-hop latency of a decode step on loopback (p50/p99 over N steps) over the session's direct
 * path (lib/wire/direct_channel.ts) and over the libp2p stream, next to the raw runtime time of
 * the same step, all measured in one run, alternating.
 *
 *   deno run -A scripts/swarm_latency.ts [--real] [--steps 500] [--blocks 4] [--hidden 1024]
 *     [--threads 2] [--json]
 *
 * `--real`: the real runtime (OnnxBlockRuntime) serving `--blocks` bloom-560m-sized random
 * blocks (hidden 1024, 16 heads; generated into a temporary directory); otherwise FakeBackend
 * blocks of `--hidden`. One server (SwarmServer, runtime listening for direct paths) and two
 * clients (SwarmPeer, one taking the direct path, one keeping the libp2p stream: TCP + noise +
 * yamux) in this process, on 127.0.0.1. Each step: the same input goes through both remote
 * sessions (timed at the client: the per-hop round trip) and a local session on the server's
 * runtime (the raw runtime time), alternating, so all see the same machine state.
 * @module
 */
import { parseArgs } from "node:util";
import { FakeBackend, fakeHidden } from "../lib/testing/mod.ts";
import type { BlockRuntime } from "../lib/runtime/types.ts";
import { ephemeralIdentity } from "../lib/swarm/peer_identity.ts";
import { SwarmPeer } from "../lib/swarm/swarm_peer.ts";
import { SwarmServer } from "../lib/swarm/swarm_server.ts";
import { Metrics } from "../lib/util/metrics.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    real: { type: "boolean", default: false },
    steps: { type: "string", default: "500" },
    blocks: { type: "string", default: "4" },
    hidden: { type: "string", default: "1024" },
    threads: { type: "string", default: "2" },
    warmup: { type: "string", default: "20" },
    json: { type: "boolean", default: false },
  },
});
const steps = Number(a.steps);
const blocks = Number(a.blocks);
const warmup = Number(a.warmup);
const maxLength = steps + warmup + 8;
const log = (s: string) => a.json ? console.error(s) : console.log(s);

let rt: BlockRuntime;
let H: number;
let dir: string | undefined;
let what: string;
if (a.real) {
  const { makeBloom560mBlocks } = await import("./fixtures.ts");
  const { createBlockRuntime } = await import("../lib/runtime/mod.ts");
  dir = await Deno.makeTempDir({ prefix: "plumise-latency-" });
  const t0 = performance.now();
  const ck = await makeBloom560mBlocks(dir, blocks);
  H = ck.config.hidden_size as number;
  log(
    `generated ${blocks} bloom-560m-sized blocks (H=${H}) in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
  rt = createBlockRuntime({
    model: dir,
    start: 0,
    end: blocks,
    weights: "fp32",
    cacheTokens: 3 * maxLength * blocks,
    maxLength,
    threads: Number(a.threads),
    direct: { host: "127.0.0.1", port: 0 },
  });
  what = `real runtime (OnnxBlockRuntime fp32, ${a.threads} threads), ${blocks} bloom-560m-sized blocks`;
} else {
  H = Number(a.hidden);
  rt = new FakeBackend({
    modelId: "m",
    numBlocks: blocks,
    hiddenSize: H,
    maxLength,
    cacheTokens: 1 << 22,
    direct: { host: "127.0.0.1", port: 0 },
  });
  what = `FakeBackend, ${blocks} blocks`;
}
await rt.start();
const model = rt.info().modelId;
const server = new SwarmServer({
  privateKey: (await ephemeralIdentity()).privateKey,
  host: "127.0.0.1",
  port: 0,
  model,
  weights: "fp32",
  version: "bench",
  metrics: new Metrics(),
  dht: false,
});
await server.start();
await server.serve(rt, { throughput: 1, inferenceRps: 1, forwardRps: 1, networkRps: 1 });
const open = async (direct: boolean) => {
  const peer = new SwarmPeer({
    privateKey: (await ephemeralIdentity()).privateKey,
    noListen: true,
    dht: false,
    direct,
  });
  await peer.start();
  const stream = await peer.client(server.peer.multiaddrs()[0]).openInference({
    sessionId: `bench-${direct}`,
    model,
    start: 0,
    end: blocks,
    maxLength,
    batch: 1,
  });
  return { peer, stream };
};
const viaDirect = await open(true), viaStream = await open(false);
const local = await rt.openSession({ start: 0, end: blocks, maxLength, batch: 1 });
const hop: number[] = [];
const hopStream: number[] = [];
const compute: number[] = [];
const raw: number[] = [];
const scale = (x: ReturnType<typeof fakeHidden>) => ({ data: x.data.map((v) => v * 2), shape: x.shape });
// one prefill token to start both caches, then decode steps (T = 1)
for (let i = 0; i < steps + warmup; i++) {
  const x = scale(fakeHidden(1, 1, H, i));
  const t0 = performance.now();
  const r = await viaDirect.stream.step(x);
  const t1 = performance.now();
  await local.step(x);
  const t2 = performance.now();
  await viaStream.stream.step(x);
  const t3 = performance.now();
  if (i >= warmup) {
    hop.push(t1 - t0);
    compute.push(r.computeMs);
    raw.push(t2 - t1);
    hopStream.push(t3 - t2);
  }
}
const q = (v: number[], p: number) =>
  [...v].sort((x, y) => x - y)[Math.min(v.length - 1, Math.floor(p * v.length))];
const stats = (v: number[]) => ({ p50: +q(v, 0.5).toFixed(3), p99: +q(v, 0.99).toFixed(3) });
const result = {
  blocks: what,
  hidden: H,
  steps,
  bytesEachWay: H * 4,
  hopMs: stats(hop),
  hopLibp2pMs: stats(hopStream),
  serverComputeMs: stats(compute),
  rawRuntimeMs: stats(raw),
  overheadP50Ms: +(q(hop, 0.5) - q(raw, 0.5)).toFixed(3),
  overheadLibp2pP50Ms: +(q(hopStream, 0.5) - q(raw, 0.5)).toFixed(3),
};
if (a.json) console.log(JSON.stringify(result));
else {
  const f = (x: { p50: number; p99: number }) => `p50 ${x.p50.toFixed(3)} ms, p99 ${x.p99.toFixed(3)} ms`;
  console.log(`decode step, ${what}, H=${H} (f32, ${H * 4} bytes each way), ${steps} steps, loopback`);
  console.log(`  per-hop round trip, direct path:   ${f(result.hopMs)}`);
  console.log(`  per-hop round trip, libp2p stream: ${f(result.hopLibp2pMs)}`);
  console.log(`  server-side compute (direct):      ${f(result.serverComputeMs)}`);
  console.log(`  raw runtime step (same process):   ${f(result.rawRuntimeMs)}`);
  console.log(
    `  hop − raw runtime, p50:            direct ${result.overheadP50Ms.toFixed(3)} ms, libp2p ${
      result.overheadLibp2pP50Ms.toFixed(3)
    } ms`,
  );
}
for (const c of [viaDirect, viaStream]) {
  await c.stream.close();
  await c.peer.stop();
}
await local.close();
await server.stop();
await rt.stop();
if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
Deno.exit(0);
