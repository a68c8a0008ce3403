import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { FakeBackend, fakeHidden } from "../../testing/mod.ts";
import { silentLogger } from "../../util/logger.ts";
import { Metrics } from "../../util/metrics.ts";
import { type FrameChannel, memoryFrameChannelPair } from "../frame_channel.ts";
import { serveForwardStream } from "../forward_handler.ts";
import { serveInferenceStream } from "../inference_handler.ts";
import { FORWARD_PROTOCOL, INFERENCE_PROTOCOL } from "../protocol_ids.ts";
import { SessionManager } from "../session_manager.ts";
import { ProtocolClient } from "../swarm_client_transport.ts";
import { isLoopbackHost, ProtocolSpanTransport, type RemoteStepTiming } from "./protocol_span_transport.ts";
import { SwarmInferenceSession } from "./swarm_inference_session.ts";
import type { RouteServer, SwarmTableView } from "./types.ts";

const MODEL = "fake/model";
const H = 16;

/** An in-process server speaking the real protocol over in-memory frame channels. */
async function memoryServer(peerId: string, start: number, end: number) {
  const runtime = new FakeBackend({ modelId: MODEL, hiddenSize: H, numBlocks: 9, start, end });
  await runtime.start();
  const sessions = new SessionManager({ runtime });
  const deps = { runtime, model: MODEL, metrics: new Metrics(), logger: silentLogger, sessions };
  const live = new Set<FrameChannel>();
  const server = {
    peerId,
    runtime,
    dead: false,
    record: {
      peerId,
      model: MODEL,
      start,
      end,
      state: "online",
      throughput: 10,
      inferenceRps: 1000,
    } as RouteServer,
    open(protocol: string): Promise<FrameChannel> {
      if (server.dead) return Promise.reject(new Error(`dial ${peerId}: connection refused`));
      const { a, b } = memoryFrameChannelPair();
      live.add(a);
      if (protocol === INFERENCE_PROTOCOL) serveInferenceStream(b, deps);
      else if (protocol === FORWARD_PROTOCOL) serveForwardStream(b, deps);
      else return Promise.reject(new Error(`unsupported ${protocol}`));
      return Promise.resolve(a);
    },
    kill() {
      server.dead = true;
      for (const a of live) a.abort(new Error(`connection reset by ${peerId}`));
      return sessions.stop();
    },
  };
  return server;
}

Deno.test("SwarmInferenceSession over the real protocol handlers: identical output through a failover", async () => {
  const servers = [
    await memoryServer("A", 0, 3),
    await memoryServer("B", 3, 6),
    await memoryServer("C", 6, 9),
    await memoryServer("B2", 3, 6),
  ];
  servers[3].record = { ...servers[3].record, inferenceRps: 1 };
  const byId = new Map(servers.map((s) => [s.peerId, s]));
  const table: SwarmTableView = { servers: () => servers.map((s) => s.record) };
  const timings: RemoteStepTiming[] = [];
  const transport = new ProtocolSpanTransport({
    clientFor: (r) => new ProtocolClient((protocol) => byId.get(r.peerId)!.open(protocol)),
    onStep: (e) => timings.push(e),
  });
  const steps = [fakeHidden(1, 4, H, 1), ...Array.from({ length: 5 }, (_, i) => fakeHidden(1, 1, H, 50 + i))];
  const ref = new FakeBackend({ modelId: MODEL, hiddenSize: H, numBlocks: 9 });
  await ref.start();
  const refSession = await ref.openSession({ start: 0, end: 9, maxLength: 32, batch: 1 });
  const session = new SwarmInferenceSession({
    model: MODEL,
    start: 0,
    end: 9,
    maxLength: 32,
    table,
    transport,
  });
  for (let i = 0; i < steps.length; i++) {
    if (i === 3) await byId.get("B")!.kill();
    const y = await session.step(steps[i]);
    const expected = await refSession.step(steps[i]);
    assert.deepEqual(y.data, expected.data, `step ${i}`);
  }
  assert.deepEqual(session.route.map((r) => r.server.peerId), ["A", "B2", "C"]);
  assert.equal(session.stats.failures, 1);
  // every successful remote step was reported with its server, span, tokens and timings
  assert.equal(
    timings.length,
    3 * steps.length,
    "one report per successful remote step (the failed one has none)",
  );
  assert.deepEqual(timings.slice(0, 3).map((t) => [t.peerId, t.start, t.end, t.tokens]), [
    ["A", 0, 3, 4],
    ["B", 3, 6, 4],
    ["C", 6, 9, 4],
  ]);
  for (const t of timings) assert.ok(t.computeMs >= 0 && t.roundTripMs >= t.computeMs, JSON.stringify(t));
  await session.close();
  for (const s of servers) await s.kill();
  // forward goes through the forward protocol
  const fwdServer = await memoryServer("F", 0, 9);
  const fwd = new ProtocolSpanTransport({ clientFor: () => new ProtocolClient((p) => fwdServer.open(p)) });
  const x = fakeHidden(1, 3, H, 9);
  assert.deepEqual(
    (await fwd.forward(fwdServer.record, { model: MODEL, start: 0, end: 9, hidden: x })).data,
    (await ref.forward(0, 9, x)).data,
  );
  // a server's error frame surfaces as a SwarmError with the protocol code
  await assert.rejects(
    () => fwd.forward(fwdServer.record, { model: "other/model", start: 0, end: 9, hidden: x }),
    (e) => e instanceof SwarmError && e.code === "WRONG_MODEL",
  );
  await fwdServer.kill();
  await ref.stop();
});

Deno.test("isLoopbackHost: 127.0.0.0/8, ::1 and localhost are this machine; other hosts are not", () => {
  for (const h of ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "::ffff:127.0.0.1"]) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (
    const h of ["10.0.0.1", "128.0.0.1", "::2", "0.0.0.0", "example.org", "127.0.0.1.example.org", "fe80::1"]
  ) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});
