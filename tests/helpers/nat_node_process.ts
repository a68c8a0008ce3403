/**
 * One plumise node of the NAT test bed (netns_bed.ts) as its own process, run inside a bed
 * namespace with `ip netns exec`. Config: one JSON argument. JSON lines on stdout:
 *   server  (SwarmServer over a FakeBackend span, swarm port 4001 on 0.0.0.0 — namespaces are
 *           private, so the fixed port collides with nothing):
 *     {"event":"ready", peerId, addrs}
 *     {"event":"record", addrs, usingRelay, reachability, relay}   whenever its own record changes
 *     {"event":"nat", status, observedHost, relays, relaying}      whenever its NAT status changes
 *   relay   (a SwarmPeer that relays and serves no blocks; identity kept in `identityPath`):
 *     {"event":"ready", peerId, addrs}, {"event":"nat", …}
 *   client  (connectSwarm; stdin "generate <json>" runs one greedy generation):
 *     {"event":"ready"}, {"event":"paused", i, conns} (after step `pauseAt`, with the client's
 *     connections {peer, addr, protocols of its open streams}; stdin
 *     "resume" goes on), {"event":"done", tokens, paths, ms, failures} | {"event":"error", message}
 *   probe   (checkReachability, as `plumise doctor` does): {"event":"probe", …status, doctor} (the
 *           doctor's line for it), then exits.
 * SIGTERM or stdin "stop": graceful stop, then exit 0.
 * @module
 */
import { FakeBackend, FakeHead, FakeTokenizer } from "../../lib/testing/mod.ts";
import { ephemeralIdentity, loadOrCreateIdentity } from "../../lib/swarm/peer_identity.ts";
import { SwarmPeer } from "../../lib/swarm/swarm_peer.ts";
import { SwarmServer } from "../../lib/swarm/swarm_server.ts";
import { connectSwarm } from "../../lib/swarm/client/connect_swarm.ts";
import type { StepSession } from "../../lib/swarm/client/generate_text.ts";
import type { SpanTransport } from "../../lib/swarm/client/types.ts";
import { checkReachability } from "../../lib/swarm/check_reachability.ts";
import { resolveConfig } from "../../lib/config/resolve_config.ts";
import { reachabilityCheck } from "../../lib/node/doctor_reachability.ts";
import type { NatOptions } from "../../lib/swarm/peer_nat.ts";
import { Metrics } from "../../lib/util/metrics.ts";
import { Logger } from "../../lib/util/logger.ts";
import { stdinLines } from "./stdin_lines.ts";

export interface NatNodeConfig {
  role: "server" | "relay" | "client" | "probe";
  initialPeers?: string[];
  model?: string;
  totalBlocks?: number;
  blockIndices?: { start: number; end: number };
  hiddenSize?: number;
  /** Pretend compute time per step (ms). */
  delayMs?: number;
  nat?: NatOptions;
  /** Persisted identity (relays keep their peer id across restarts). */
  identityPath?: string;
  /** Swarm listen port (default 4001). */
  port?: number;
}

const cfg = JSON.parse(Deno.args[0] ?? "{}") as NatNodeConfig;
const out = (o: unknown) => console.log(JSON.stringify(o));
const logger = new Logger({ level: Deno.env.get("NAT_TEST_LOG") === "debug" ? "debug" : "warn", json: true });
const model = cfg.model ?? "fake/model";
const H = cfg.hiddenSize ?? 16;
const privateKey = cfg.identityPath
  ? (await loadOrCreateIdentity(cfg.identityPath)).privateKey
  : (await ephemeralIdentity()).privateKey;
let stop: () => Promise<void> = () => Promise.resolve();
let onLine: (line: string) => Promise<void> = () => Promise.resolve();

function watchNat(peer: SwarmPeer): void {
  let last = "";
  const report = () => {
    const s = peer.natStatus();
    if (!s) return;
    const ev = {
      event: "nat",
      status: s.reachability.status,
      observedHost: s.reachability.observedHost,
      reason: s.reachability.reason,
      relays: s.relays,
      relaying: s.relaying,
    };
    const key = JSON.stringify(ev);
    if (key !== last) {
      last = key;
      out(ev);
    }
  };
  setInterval(report, 100);
}

if (cfg.role === "server") {
  const server = new SwarmServer({
    privateKey,
    host: "0.0.0.0",
    port: cfg.port ?? 4001,
    initialPeers: cfg.initialPeers,
    model,
    weights: "fp32",
    version: "test",
    metrics: new Metrics(),
    announcePeriodMs: 2_000,
    dht: false,
    logger,
    nat: cfg.nat,
    pinned: true,
  });
  await server.start();
  const span = cfg.blockIndices ?? { start: 0, end: cfg.totalBlocks ?? 9 };
  await server.announce("joining", span);
  const runtime = new FakeBackend({
    modelId: model,
    numBlocks: cfg.totalBlocks ?? 9,
    start: span.start,
    end: span.end,
    hiddenSize: H,
    delayMs: cfg.delayMs ?? 0,
    direct: { host: "0.0.0.0", port: (cfg.port ?? 4001) + 1 },
  });
  await runtime.start();
  await server.serve(runtime, { throughput: 10, inferenceRps: 1000, forwardRps: 1000, networkRps: 1000 });
  out({ event: "ready", peerId: server.peerId, addrs: server.peer.multiaddrs() });
  watchNat(server.peer);
  let last = "";
  server.table.onChange(() => {
    const own = server.table.get(server.peerId)?.record;
    if (!own) return;
    const ev = {
      event: "record",
      addrs: own.addrs,
      usingRelay: own.usingRelay,
      reachability: own.reachability,
      relay: own.relay ?? false,
    };
    const key = JSON.stringify(ev);
    if (key !== last) {
      last = key;
      out(ev);
    }
  });
  stop = async () => {
    await server.stop();
    await runtime.stop();
  };
} else if (cfg.role === "relay") {
  const peer = new SwarmPeer({
    privateKey,
    host: "0.0.0.0",
    port: cfg.port ?? 4001,
    initialPeers: cfg.initialPeers,
    dht: false,
    logger,
    nat: { ...cfg.nat, relayService: "on" },
  });
  await peer.start();
  out({ event: "ready", peerId: peer.peerId, addrs: peer.multiaddrs() });
  watchNat(peer);
  stop = () => peer.stop();
} else if (cfg.role === "client") {
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const paths: Array<{ peer: string; path?: string }> = [];
  const client = await connectSwarm({
    model,
    initialPeers: cfg.initialPeers ?? [],
    head,
    tokenizer,
    numBlocks: cfg.totalBlocks ?? 9,
    tableRefreshMs: 0,
    retryBackoff: { initialMs: 50, maxMs: 500 },
    maxRetries: 6,
    push: false,
    holePunch: cfg.nat?.holePunch,
    natScope: cfg.nat?.scope,
    logger,
    wrapTransport: (t: SpanTransport): SpanTransport => ({
      async openInference(server, request, signal) {
        const r = await t.openInference(server, request, signal);
        paths.push({ peer: server.peerId, path: r.path });
        return r;
      },
      forward: (server, request, signal) => t.forward(server, request, signal),
      ...(t.ping ? { ping: (server, signal) => t.ping!(server, signal) } : {}),
    }),
  });
  out({ event: "ready", peerId: client.peer.peerId });
  let resume: (() => void) | undefined;
  let avoided: string[] = [];
  onLine = async (line) => {
    if (line === "resume") return resume?.();
    if (!line.startsWith("generate ")) return;
    const o = JSON.parse(line.slice(9)) as {
      prompt: string;
      maxNewTokens: number;
      pauseAt?: number;
      servers?: number;
      /** Peers routing must not use this time (banned for the generation; benchmarks pick paths so). */
      avoid?: string[];
    };
    paths.length = 0;
    for (const p of avoided) client.bans.succeed(p);
    avoided = o.avoid ?? [];
    for (const p of avoided) for (let k = 0; k < 8; k++) client.bans.ban(p);
    try {
      // the table may still lack a server's latest record (its relayed addresses)
      for (let i = 0; i < 100 && client.swarmTable.servers(model).length < (o.servers ?? 0); i++) {
        await client.swarmTable.refresh();
        await new Promise((r) => setTimeout(r, 100));
      }
      // (the fake tokenizer is one token per character)
      const session = client.openSession({ maxLength: Math.max(64, o.prompt.length + o.maxNewTokens + 8) });
      let i = 0;
      const proxy: StepSession = {
        get position() {
          return session.position;
        },
        maxLength: session.maxLength,
        async step(h, so) {
          const y = await session.step(h, so);
          i++;
          if (i === o.pauseAt) {
            const conns = client.peer.node.getConnections().map((c) => ({
              peer: c.remotePeer.toString(),
              addr: c.remoteAddr.toString(),
              protocols: c.streams.map((s) => s.protocol ?? ""),
            }));
            out({ event: "paused", i, conns });
            await new Promise<void>((r) => (resume = r));
          }
          return y;
        },
      };
      const t0 = performance.now();
      const r = await client.generateWith(proxy, o.prompt, { maxNewTokens: o.maxNewTokens, eosTokenIds: [] })
        .complete();
      const ms = performance.now() - t0;
      out({ event: "done", tokens: [...r.tokenIds], paths, ms, failures: session.stats.failures });
      await session.close();
    } catch (err) {
      out({ event: "error", message: String(err) });
    }
  };
  stop = () => client.stop();
} else if (cfg.role === "probe") {
  const port = cfg.port ?? 4001;
  const status = await checkReachability({
    privateKey,
    host: "0.0.0.0",
    port,
    initialPeers: cfg.initialPeers ?? [],
    logger,
    scope: cfg.nat?.scope,
  });
  // the line `plumise doctor` prints for it
  const { config } = resolveConfig({
    env: {
      PLUMISE_OFFLINE: "true",
      PETALS_PORT: String(port),
      PETALS_INITIAL_PEERS: (cfg.initialPeers ?? []).join(","),
      NAT_SCOPE: cfg.nat?.scope ?? "public",
    },
  });
  out({ event: "probe", ...status, doctor: reachabilityCheck(config, status, port) });
  Deno.exit(0);
}

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  await stop();
  out({ event: "stopped" });
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", () => void shutdown());

for await (const raw of stdinLines()) {
  const line = raw.trim();
  if (line === "stop") await shutdown();
  else void onLine(line);
}
