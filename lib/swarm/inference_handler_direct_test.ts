import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { assertEnds, FakeBackend, fakeHidden, HOST, readEnd, readErrorFrame } from "../testing/mod.ts";
import type { HiddenStates } from "../runtime/types.ts";
import { memoryLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import {
  connectDirect,
  type DirectFrameChannel,
  type DirectOffer,
  tensor,
  type WireMessage,
} from "../wire/mod.ts";
import { DirectPaths } from "./direct_paths.ts";
import { type FrameChannel, memoryFrameChannelPair } from "./frame_channel.ts";
import { type HandlerDeps, serveInferenceStream } from "./inference_handler.ts";
import { INFERENCE_PROTOCOL } from "./protocol_ids.ts";
import { SessionManager } from "./session_manager.ts";
import { ProtocolClient } from "./swarm_client_transport.ts";

const H = 16;

async function setup(opts: { direct?: boolean; listen?: boolean; idleMs?: number; now?: () => number } = {}) {
  const config = { modelId: "m", numBlocks: 8, start: 2, end: 6, hiddenSize: H, maxLength: 64 };
  const runtime = new FakeBackend({
    ...config,
    ...(opts.listen === false ? {} : { direct: { host: HOST, port: 0 } }),
  });
  await runtime.start();
  const reference = new FakeBackend(config);
  await reference.start();
  const metrics = new Metrics();
  const { logger } = memoryLogger();
  const sessions = new SessionManager({
    runtime,
    limits: { maxSessions: 8, idleMs: opts.idleMs ?? 60_000 },
    ...(opts.now ? { now: opts.now } : {}),
  });
  const deps: HandlerDeps & { sessions: SessionManager } = {
    runtime,
    model: "m",
    metrics,
    logger,
    sessions,
    ...(opts.direct === undefined ? {} : { direct: opts.direct }),
  };
  const stop = async () => {
    await sessions.stop();
    await runtime.stop();
    await reference.stop();
  };
  return { runtime, reference, metrics, sessions, deps, stop };
}

const open = (sessionId: string, maxLength = 16): WireMessage => ({
  type: "open",
  sessionId,
  model: "m",
  start: 2,
  end: 6,
  maxLength,
  batch: 1,
  dtype: "f32",
});

const stepMsg = (stepId: number, x: HiddenStates): WireMessage => ({
  type: "step",
  stepId,
  hidden: tensor(x.data, x.shape, "f32"),
});

/** Opens a session over an in-memory "libp2p stream"; returns the client's end and the opened reply. */
async function opened(deps: HandlerDeps & { sessions: SessionManager }, sessionId: string, maxLength = 16) {
  const { a, b } = memoryFrameChannelPair();
  const done = serveInferenceStream(b, deps);
  await a.write(open(sessionId, maxLength));
  const reply = await a.read();
  assert.ok(reply?.type === "opened", `expected opened, got ${JSON.stringify(reply)}`);
  return { control: a, reply, done };
}

/** Steps `x` on `ch` and checks the result against `want`. */
async function stepEquals(
  ch: FrameChannel | DirectFrameChannel,
  id: number,
  x: HiddenStates,
  want: HiddenStates,
) {
  await ch.write(stepMsg(id, x));
  const got = await ch.read();
  assert.ok(got?.type === "result", `expected a result for step ${id}, got ${JSON.stringify(got)}`);
  assert.equal(got.stepId, id);
  assert.deepEqual(got.hidden.shape, want.shape);
  assert.deepEqual(got.hidden.data, want.data);
}

function assertOffer(offer: DirectOffer | undefined, port: number): asserts offer is DirectOffer {
  assert.ok(offer, "opened carries a direct offer");
  assert.equal(offer.port, port);
  assert.match(offer.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.match(offer.key, /^[A-Za-z0-9_-]{43}$/);
}

/**
 * setup(opts) and a session opened on the control stream whose direct offer (checked against the
 * runtime's listener) a client attached to; `close` aborts the direct path and stops everything.
 */
async function attached(sessionId: string, opts: Parameters<typeof setup>[0] = {}) {
  const env = await setup(opts);
  const { control, reply, done } = await opened(env.deps, sessionId);
  assertOffer(reply.direct, env.runtime.info().directPort!);
  const direct = await connectDirect(HOST, reply.direct);
  const close = async () => {
    direct.abort();
    await env.stop();
  };
  return { ...env, control, reply, done, direct, close };
}

/** `attached` on a manual clock that starts at 0, sessions idle after 1 000 ms; `at(ms)` sets the clock. */
async function attachedOnClock(sessionId: string) {
  let clock = 0;
  const env = await attached(sessionId, { idleMs: 1_000, now: () => clock });
  const at = (ms: number) => {
    clock = ms;
  };
  return { ...env, at };
}

/** Checks that the session and its runtime session are gone. */
function assertFreed({ sessions, runtime }: { sessions: SessionManager; runtime: FakeBackend }): void {
  assert.equal(sessions.count, 0);
  assert.equal(runtime.info().openSessions, 0);
}

Deno.test("inference handler, direct: attached client's steps are served by the runtime; close frees all", async () => {
  const { runtime, reference, metrics, sessions, control, reply, done, direct, close } = await attached("a");
  assert.equal(reply.sessionId, "a");
  const ref = await reference.openSession({ start: 2, end: 6, maxLength: 16, batch: 1 });
  for (const [id, t] of [4, 1, 1].entries()) {
    const x = fakeHidden(1, t, H, 20 + id);
    await stepEquals(direct, id, x, await ref.step(x));
  }
  assert.equal(runtime.stats.steps, 3);
  const snap = metrics.snapshot();
  assert.equal(snap.tokensProcessed, 6);
  assert.equal(snap.latencySamples, 3);
  assert.equal(snap.requestCount, 1);
  assert.equal(sessions.count, 1);
  await direct.write({ type: "close" });
  await control.close();
  await done;
  assert.equal(await readEnd(direct), null, "the server closed the direct connection");
  assertFreed({ sessions, runtime });
  assert.equal(runtime.info().cacheTokensLeft, runtime.info().cacheTokensTotal);
  await close();
});

Deno.test("inference handler, direct: a client that keeps the stream is served there and the ticket dies", async () => {
  const { runtime, reference, metrics, sessions, deps, stop } = await setup();
  const { control, reply, done } = await opened(deps, "b");
  assertOffer(reply.direct, runtime.info().directPort!);
  const ref = await reference.openSession({ start: 2, end: 6, maxLength: 16, batch: 1 });
  for (const [id, t] of [3, 1].entries()) {
    const x = fakeHidden(1, t, H, 30 + id);
    await stepEquals(control, id, x, await ref.step(x));
  }
  assert.equal(metrics.snapshot().tokensProcessed, 4);
  assert.equal(runtime.directListener?.openOffers, 0, "the offer was withdrawn");
  await assert.rejects(
    connectDirect(HOST, reply.direct, { ackMs: 2_000 }),
    (e: unknown) =>
      e instanceof WireError && e.code === "DIRECT_FAILED" && e.message.includes(`:${reply.direct!.port}`),
  );
  // the stream still works after the failed attempt
  const x = fakeHidden(1, 1, H, 40);
  await stepEquals(control, 2, x, await ref.step(x));
  await control.write({ type: "close" });
  await control.close();
  await done;
  assert.equal(await control.read(), null);
  assertFreed({ sessions, runtime });
  await stop();
});

Deno.test("inference handler, direct: the client ending only the control stream ends the direct path", async () => {
  const { runtime, sessions, control, done, direct, close } = await attached("c");
  await direct.write(stepMsg(0, fakeHidden(1, 2, H)));
  assert.equal((await direct.read())?.type, "result");
  await control.close();
  await done;
  await assertEnds(direct, "the server closed the direct path");
  assertFreed({ sessions, runtime });
  await close();
});

Deno.test("inference handler, direct: a frame on the control stream after attaching ends the session", async () => {
  const { runtime, sessions, control, done, direct, close } = await attached("c2");
  await control.write(stepMsg(0, fakeHidden(1, 1, H)));
  await done;
  await assertEnds(direct, "the server closed the direct path");
  assert.equal(runtime.stats.steps, 0, "a step on the control stream is not served");
  assertFreed({ sessions, runtime });
  await close();
});

Deno.test("inference handler, direct: a bad step on the direct path → error there, control dropped, session freed", async () => {
  const { runtime, sessions, control, done, direct, close } = await attached("f");
  await direct.write(stepMsg(5, fakeHidden(1, 1, 8)));
  const err = await readErrorFrame(direct, "BAD_FRAME");
  assert.equal(err.stepId, 5);
  assert.match(err.message, /\[1,1,8\]/);
  await done;
  assert.equal(await readEnd(control), "error", "the control stream was aborted");
  assertFreed({ sessions, runtime });
  await close();
});

Deno.test("inference handler, direct: steps on the direct path keep the session from going idle", async () => {
  const { sessions, control, done, direct, close, at } = await attachedOnClock("touch");
  at(900);
  await direct.write(stepMsg(0, fakeHidden(1, 1, H)));
  assert.equal((await direct.read())?.type, "result");
  at(1_500);
  assert.deepEqual(sessions.sweep(), [], "the direct step touched the session");
  assert.equal(sessions.count, 1);
  await direct.write({ type: "close" });
  await control.close();
  await done;
  await close();
});

/**
 * A session aborted server-side (idle sweep, age cap, SessionManager.stop) while attached ends its
 * direct path with the TIMEOUT error frame the libp2p path sends (the handler cancels inside
 * abort(), before the session manager's close of the runtime session cancels quietly).
 */
Deno.test({
  name: "inference handler, direct: an idle-expired session sends TIMEOUT on the direct path and is freed",
  fn: async () => {
    const { runtime, sessions, control, done, direct, close, at } = await attachedOnClock("idle");
    at(1_000);
    assert.deepEqual(sessions.sweep(), ["idle"]);
    const err = await readErrorFrame(direct, "TIMEOUT");
    assert.match(err.message, /idle for 1000 ms/);
    await done;
    assert.equal(await readEnd(control), "error");
    assertFreed({ sessions, runtime });
    await close();
  },
});

/** As above, with SessionManager.stop() (server stopping). */
Deno.test({
  name: "inference handler, direct: stopping the session manager sends TIMEOUT on the direct path",
  fn: async () => {
    const { runtime, sessions, done, direct, close } = await attached("stop");
    await sessions.stop();
    const err = await readErrorFrame(direct, "TIMEOUT");
    assert.match(err.message, /server stopping/);
    await done;
    assert.equal(runtime.info().openSessions, 0);
    await close();
  },
});

Deno.test("inference handler, direct: a session aborted server-side closes the direct path and is freed", async () => {
  const { runtime, sessions, control, done, direct, close, at } = await attachedOnClock("idle2");
  at(1_000);
  assert.deepEqual(sessions.sweep(), ["idle2"]);
  await done;
  const first = await readEnd(direct);
  assert.ok(first !== null && first !== "error" && first.type === "error", `an error frame first: ${first}`);
  assert.equal(first.code, "TIMEOUT");
  await assertEnds(direct, "the direct path ended");
  assert.equal(await readEnd(control), "error", "the control stream was aborted");
  assertFreed({ sessions, runtime });
  await close();
});

Deno.test("inference handler, direct: deps.direct = false or a runtime without a listener → no offer", async () => {
  for (const opts of [{ direct: false }, { listen: false }]) {
    const { runtime, reference, sessions, deps, stop } = await setup(opts);
    const { control, reply, done } = await opened(deps, "e");
    assert.equal(reply.direct, undefined, `no direct offer with ${JSON.stringify(opts)}`);
    assert.equal("direct" in reply, false);
    assert.equal(runtime.directListener?.openOffers ?? 0, 0);
    const ref = await reference.openSession({ start: 2, end: 6, maxLength: 16, batch: 1 });
    const x = fakeHidden(1, 2, H, 50);
    await stepEquals(control, 0, x, await ref.step(x));
    await control.write({ type: "close" });
    await done;
    assert.equal(sessions.count, 0);
    await stop();
  }
});

/** A channel that reports `remoteHost` and records the frame types the server side read. */
function spied(ch: FrameChannel, seen: string[], remoteHost?: string): FrameChannel {
  return {
    read: async (o) => {
      const m = await ch.read(o);
      seen.push(m === null ? "null" : m.type);
      return m;
    },
    write: (m, o) => ch.write(m, o),
    close: () => ch.close(),
    abort: (e) => ch.abort(e),
    get writable() {
      return ch.writable;
    },
    ...(remoteHost ? { remoteHost } : {}),
  };
}

Deno.test("ProtocolClient: steps go over the offered direct path when reachable, else the stream with backoff", async () => {
  const { runtime, reference, sessions, deps, stop } = await setup();
  let host = "127.0.0.1";
  const seen: string[][] = [];
  const served: Promise<void>[] = [];
  const paths = new DirectPaths();
  const client = new ProtocolClient(
    (protocol) => {
      assert.equal(protocol, INFERENCE_PROTOCOL);
      const { a, b } = memoryFrameChannelPair();
      const log: string[] = [];
      seen.push(log);
      served.push(serveInferenceStream(spied(b, log), deps));
      return Promise.resolve(spied(a, [], host));
    },
    { openMs: 5_000, stepMs: 5_000 },
    { directPaths: paths },
  );

  const run = async (sessionId: string) => {
    const s = await client.openInference({
      sessionId,
      model: "m",
      start: 2,
      end: 6,
      maxLength: 16,
      batch: 1,
    });
    const ref = await reference.openSession({ start: 2, end: 6, maxLength: 16, batch: 1 });
    for (const t of [3, 1]) {
      const x = fakeHidden(1, t, H, t);
      const got = await s.step(x);
      assert.deepEqual(got.hidden.data, (await ref.step(x)).data);
    }
    await s.close();
  };
  // reachable: the server's stream only ever sees the open (and the client's end)
  await run("d1");
  await served[0];
  assert.deepEqual(seen[0].filter((t) => t !== "null"), ["open"]);
  // unreachable (nothing listens on 127.0.0.2's port): falls back to the stream, remembers
  host = "127.0.0.2";
  await run("d2");
  await served[1];
  assert.deepEqual(seen[1], ["open", "step", "step", "close"]);
  const port = runtime.info().directPort!;
  assert.equal(paths.shouldTry("127.0.0.2", port), false, "the failure is remembered");
  assert.equal(paths.shouldTry("127.0.0.1", port), true);
  await run("d3");
  await served[2];
  assert.deepEqual(seen[2], ["open", "step", "step", "close"]);
  assert.equal(sessions.count, 0);
  assert.equal(runtime.info().openSessions, 0);
  assert.equal(runtime.stats.steps, 6);
  await stop();
});
