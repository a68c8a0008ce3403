/**
 * A swarm server (FakeBackend blocks) or observer as its own process, for multi-process
 * tests. Config: one JSON argument. Writes JSON lines to stdout:
 *   {"event":"ready", peerId, addrs, span?, records}   after start (observer: after the pull)
 *   {"event":"table", servers: {peerId: state}}         whenever its table changes
 *   {"event":"mem", heapUsed, rss}                        on the stdin line "mem"
 *   {"event":"moved", from, to, seen}                     after a rebalancing move (config `rebalance`;
 *                                                         seen: the spans in its table when it moved)
 * stdin lines: "announce <state>" re-announces with that state; "mem"; "snapshot <path>" (V8 heap
 * snapshot, then {"event":"snapshot", path}); "stop".
 * SIGTERM / "stop": graceful stop (announces offline), then exit 0.
 * @module
 */
import { FakeBackend } from "../../lib/testing/mod.ts";
import { ephemeralIdentity } from "../../lib/swarm/peer_identity.ts";
import { SwarmPeer } from "../../lib/swarm/swarm_peer.ts";
import { SwarmServer } from "../../lib/swarm/swarm_server.ts";
import { Metrics } from "../../lib/util/metrics.ts";
import { Logger } from "../../lib/util/logger.ts";
import type { ServerState } from "../../lib/wire/mod.ts";
import { stdinLines } from "./stdin_lines.ts";

export interface SwarmNodeProcessConfig {
  role: "server" | "observer";
  initialPeers?: string[];
  model?: string;
  totalBlocks?: number;
  numBlocks?: number;
  blockIndices?: { start: number; end: number };
  hiddenSize?: number;
  announcePeriodMs?: number;
  ttlMs?: number;
  maxFrameBytes?: number;
  throughput?: number;
  delayMs?: number;
  /** Rebalance every U(0, maxDelayMs) ms (the move loads a new FakeBackend for the new span). */
  rebalance?: { maxDelayMs: number; settleMs?: number };
  /** libp2p stream protocol negotiation timeout (default 10 s). */
  negotiationTimeoutMs?: number;
}

const cfg = JSON.parse(Deno.args[0] ?? "{}") as SwarmNodeProcessConfig;
const out = (o: unknown) => console.log(JSON.stringify(o));
const logger = new Logger({
  level: Deno.env.get("SWARM_TEST_LOG") === "debug" ? "debug" : "warn",
  json: true,
});
const model = cfg.model ?? "fake/model";
const { privateKey } = await ephemeralIdentity();
let stop: () => Promise<void>;
let table: SwarmPeer["table"];
let announce: ((s: ServerState) => Promise<void>) | undefined;

if (cfg.role === "observer") {
  const peer = new SwarmPeer({
    privateKey,
    noListen: true,
    initialPeers: cfg.initialPeers,
    dht: false,
    logger,
  });
  await peer.start();
  table = peer.table;
  out({ event: "ready", peerId: peer.peerId, addrs: [], records: table.size });
  stop = () => peer.stop();
} else {
  const server = new SwarmServer({
    privateKey,
    host: "127.0.0.1",
    port: 0,
    initialPeers: cfg.initialPeers,
    model,
    weights: "fp32",
    version: "test",
    metrics: new Metrics(),
    announcePeriodMs: cfg.announcePeriodMs ?? 1000,
    ttlMs: cfg.ttlMs,
    maxFrameBytes: cfg.maxFrameBytes,
    negotiationTimeoutMs: cfg.negotiationTimeoutMs,
    dht: false,
    logger,
    rebalance: cfg.rebalance
      ? { delayMs: () => Math.random() * cfg.rebalance!.maxDelayMs, settleMs: cfg.rebalance.settleMs }
      : undefined,
  });
  await server.start();
  const total = cfg.totalBlocks ?? 24;
  const span = cfg.blockIndices ?? server.chooseSpan(total, cfg.numBlocks ?? 6);
  await server.announce("joining", span);
  const makeRuntime = (s: { start: number; end: number }) =>
    new FakeBackend({
      modelId: model,
      numBlocks: total,
      start: s.start,
      end: s.end,
      hiddenSize: cfg.hiddenSize ?? 16,
      delayMs: cfg.delayMs ?? 0,
    });
  let runtime = makeRuntime(span);
  await runtime.start();
  const t = cfg.throughput ?? 10;
  await server.serve(runtime, { throughput: t, inferenceRps: t * 10, forwardRps: t * 100, networkRps: 1000 });
  if (cfg.rebalance) {
    server.onMove(async (to) => {
      const from = runtime.info();
      // what this server saw when it decided (diagnoses a surprising move)
      const seen = server.table.spans(model).map((x) => `${x.peerId.slice(-6)} ${x.start}:${x.end}`);
      const next = makeRuntime(to);
      await next.start();
      const old = runtime;
      runtime = next;
      await server.serve(next);
      await old.stop();
      out({ event: "moved", from: { start: from.start, end: from.end }, to, seen });
    });
  }
  table = server.table;
  announce = (s) => server.announce(s);
  out({ event: "ready", peerId: server.peerId, addrs: server.peer.multiaddrs(), span, records: table.size });
  stop = async () => {
    await server.stop();
    await runtime.stop();
  };
}

let last = "";
const report = () => {
  const servers = Object.fromEntries(table.entries(model).map((e) => [e.record.peerId, e.record.state]));
  const spans = table.spans(model).map((x) => [x.peerId, x.start, x.end]);
  const s = JSON.stringify([servers, spans]);
  if (s !== last) {
    last = s;
    out({ event: "table", servers, spans });
  }
};
table.onChange(report);
setInterval(report, 100); // expiry (prune) also changes the table
report();

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
  if (line.startsWith("announce ") && announce) await announce(line.slice(9) as ServerState);
  else if (line === "mem") {
    (globalThis as { gc?: () => void }).gc?.();
    const m = Deno.memoryUsage();
    out({ event: "mem", heapUsed: m.heapUsed, rss: m.rss, external: m.external });
  } else if (line.startsWith("snapshot ")) {
    (globalThis as { gc?: () => void }).gc?.();
    const { writeHeapSnapshot } = await import("node:v8");
    out({ event: "snapshot", path: writeHeapSnapshot(line.slice(9)) });
  } else if (line === "stop") await shutdown();
}
