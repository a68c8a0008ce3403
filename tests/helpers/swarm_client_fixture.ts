/**
 * Test fixture for the swarm client's multi-process tests: a minimal span server on 127.0.0.1
 * (libp2p + the swarm's real inference/forward handlers + a table endpoint) over a FakeBackend,
 * runnable in-process (`startFixtureServer`) or as a subprocess (`spawnFixtureServer`, which runs
 * this file as main: it prints its signed record as one JSON line, reads other servers' records
 * from stdin, and serves until killed).
 * @module
 */
import { FakeBackend } from "../../lib/testing/mod.ts";
import { createBlockRuntime } from "../../lib/runtime/onnx_block_runtime.ts";
import type { BlockRuntime } from "../../lib/runtime/types.ts";
import { silentLogger } from "../../lib/util/logger.ts";
import { Metrics } from "../../lib/util/metrics.ts";
import { streamFrameChannel } from "../../lib/swarm/frame_channel.ts";
import { serveForwardStream } from "../../lib/swarm/forward_handler.ts";
import { serveInferenceStream } from "../../lib/swarm/inference_handler.ts";
import { createLibp2pNode } from "../../lib/swarm/libp2p_node.ts";
import { ephemeralIdentity, type PeerIdentity } from "../../lib/swarm/peer_identity.ts";
import { FORWARD_PROTOCOL, INFERENCE_PROTOCOL, TABLE_PROTOCOL } from "../../lib/swarm/protocol_ids.ts";
import { signRecord } from "../../lib/swarm/record_signer.ts";
import { SessionManager } from "../../lib/swarm/session_manager.ts";
import { SwarmTable } from "../../lib/swarm/swarm_table.ts";
import type { SignedRecordWire } from "../../lib/wire/mod.ts";
import type { CpuPinning } from "../../lib/util/cpu_list.ts";
import { spawnModule } from "./spawn_module.ts";
import { stdinLines } from "./stdin_lines.ts";

export interface FixtureServerOptions {
  model: string;
  start: number;
  end: number;
  numBlocks: number;
  hiddenSize: number;
  /** Announced per-block inference rate (routing preference). */
  inferenceRps?: number;
  /** The blocks to serve (default: a FakeBackend, or the onnx runtime when `checkpointDir` is set). */
  runtime?: BlockRuntime;
  /** Serve the real onnx runtime over this checkpoint directory (fp32, `threads` intra-op threads). */
  checkpointDir?: string;
  threads?: number;
  /** Pinning of the onnx runtime's compute threads (default "auto", as the runtime's). */
  pinning?: CpuPinning;
  /** Offer inference sessions a direct path (default true). */
  direct?: boolean;
  /** Pretend compute time of each FakeBackend step, in ms (default 0). */
  delayMs?: number;
  /** The server's identity (default: a fresh one); in-process servers only. */
  identity?: PeerIdentity;
  /** The libp2p TCP port (default: any free one). */
  port?: number;
}

export interface FixtureServer {
  peerId: string;
  addrs: string[];
  signed: SignedRecordWire;
  table: SwarmTable;
  stop(): Promise<void>;
}

export async function startFixtureServer(o: FixtureServerOptions): Promise<FixtureServer> {
  const direct = o.direct === false ? undefined : { host: "127.0.0.1", port: 0 };
  const runtime = o.runtime ?? (o.checkpointDir
    ? createBlockRuntime({
      model: o.checkpointDir,
      start: o.start,
      end: o.end,
      weights: "fp32",
      threads: o.threads ?? 1,
      pinning: o.pinning,
      cacheTokens: 1 << 20,
      direct,
    })
    : new FakeBackend({
      modelId: o.model,
      hiddenSize: o.hiddenSize,
      numBlocks: o.numBlocks,
      start: o.start,
      end: o.end,
      direct,
      delayMs: o.delayMs,
    }));
  await runtime.start();
  const identity = o.identity ?? await ephemeralIdentity();
  const node = await createLibp2pNode({
    privateKey: identity.privateKey,
    host: "127.0.0.1",
    port: o.port ?? 0,
    dht: false,
  });
  await node.start();
  const sessions = new SessionManager({ runtime });
  sessions.start();
  const deps = { runtime, model: o.model, metrics: new Metrics(), logger: silentLogger, sessions };
  const table = new SwarmTable();
  await node.handle(INFERENCE_PROTOCOL, (stream) => serveInferenceStream(streamFrameChannel(stream), deps));
  await node.handle(FORWARD_PROTOCOL, (stream) => serveForwardStream(streamFrameChannel(stream), deps));
  await node.handle(TABLE_PROTOCOL, async (stream) => {
    const ch = streamFrameChannel(stream);
    try {
      const req = await ch.read();
      const model = req?.type === "table_request" ? req.model : undefined;
      await ch.write({ type: "table", records: table.signedRecords(model) });
      await ch.close();
    } catch {
      ch.abort();
    }
  });
  const addrs = node.getMultiaddrs().map((m) => m.toString());
  const info = runtime.info();
  const signed = await signRecord({
    peerId: identity.peerId,
    addrs,
    model: o.model,
    start: o.start,
    end: o.end,
    state: "online",
    throughput: 100,
    inferenceRps: o.inferenceRps ?? 1000,
    forwardRps: 1000,
    networkRps: 1000,
    cacheTokensLeft: info.cacheTokensLeft,
    weights: "fp32",
    version: "0.1.0",
    wallet: null,
    usingRelay: false,
    nextPings: {},
    seq: 1,
    expiresAt: Date.now() + 600_000,
  }, identity.privateKey);
  await table.offer(signed);
  return {
    peerId: identity.peerId,
    addrs,
    signed,
    table,
    async stop() {
      await node.stop();
      await sessions.stop();
      await runtime.stop();
    },
  };
}

export interface SpawnedFixture {
  peerId: string;
  addrs: string[];
  signed: SignedRecordWire;
  child: Deno.ChildProcess;
  /** Sends records of other servers into this server's table. */
  addRecords(records: SignedRecordWire[]): Promise<void>;
  /** SIGKILL. */
  kill(): Promise<void>;
}

/** Starts the fixture server as a separate process and waits for its record. */
export async function spawnFixtureServer(
  o: Omit<FixtureServerOptions, "runtime" | "identity">,
): Promise<SpawnedFixture> {
  const child = spawnModule(import.meta.url, o);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`fixture server exited before printing its record: ${buf}`);
    buf += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const signed = JSON.parse(buf.slice(0, buf.indexOf("\n"))) as SignedRecordWire & {
    peerId: string;
    addrs: string[];
  };
  const writer = child.stdin.getWriter();
  const enc = new TextEncoder();
  let exited = false;
  child.status.then(() => (exited = true));
  return {
    peerId: signed.peerId,
    addrs: signed.addrs,
    signed: { payload: signed.payload, signature: signed.signature } as SignedRecordWire,
    child,
    async addRecords(records) {
      await writer.write(enc.encode(JSON.stringify(records) + "\n"));
    },
    async kill() {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await child.status;
      await writer.close().catch(() => {});
    },
  };
}

if (import.meta.main) {
  const o = JSON.parse(Deno.args[0]) as FixtureServerOptions;
  const server = await startFixtureServer(o);
  const out = { ...server.signed, peerId: server.peerId, addrs: server.addrs };
  await Deno.stdout.write(new TextEncoder().encode(JSON.stringify(out) + "\n"));
  for await (const line of stdinLines()) {
    for (const r of JSON.parse(line) as SignedRecordWire[]) await server.table.offer(r);
  }
  // stdin closed: the parent is gone
  await server.stop();
  Deno.exit(0);
}
