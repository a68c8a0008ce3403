import assert from "node:assert/strict";
import { FakeBackend, fakeHidden, stalledChannel } from "../testing/mod.ts";
import { memoryLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import { SwarmError } from "../errors.ts";
import { lengthPrefixed, roundToF16, tensor } from "../wire/mod.ts";
import { type FrameChannel, memoryFrameChannelPair } from "./frame_channel.ts";
import { serveForwardStream } from "./forward_handler.ts";
import { serveInferenceStream } from "./inference_handler.ts";
import { FORWARD_PROTOCOL, INFERENCE_PROTOCOL } from "./protocol_ids.ts";
import { SessionManager } from "./session_manager.ts";
import { ProtocolClient } from "./swarm_client_transport.ts";

function setup(opts: { cacheTokens?: number; maxSessions?: number; idleMs?: number } = {}) {
  const runtime = new FakeBackend({
    modelId: "m",
    numBlocks: 8,
    start: 2,
    end: 6,
    hiddenSize: 16,
    cacheTokens: opts.cacheTokens,
  });
  const metrics = new Metrics();
  const { logger } = memoryLogger();
  const sessions = new SessionManager({
    runtime,
    limits: { maxSessions: opts.maxSessions ?? 8, idleMs: opts.idleMs ?? 60_000 },
  });
  const deps = { runtime, model: "m", metrics, logger, sessions };
  const served: Promise<void>[] = [];
  const client = new ProtocolClient((protocol) => {
    const { a, b } = memoryFrameChannelPair();
    served.push(
      protocol === INFERENCE_PROTOCOL
        ? serveInferenceStream(b, deps)
        : protocol === FORWARD_PROTOCOL
        ? serveForwardStream(b, deps)
        : Promise.resolve(),
    );
    return Promise.resolve(a);
  }, { openMs: 5000, stepMs: 5000 });
  return { runtime, metrics, sessions, client, served, deps };
}

Deno.test("inference handler: a session over the protocol equals the runtime locally (f32 exact, f16 rounded)", async () => {
  const { runtime, metrics, sessions, client, served } = setup();
  await runtime.start();
  const local = new FakeBackend({ modelId: "m", numBlocks: 8, start: 2, end: 6, hiddenSize: 16 });
  await local.start();
  const ref = await local.openSession({ start: 2, end: 6, maxLength: 32, batch: 1 });
  const s = await client.openInference({
    sessionId: "s1",
    model: "m",
    start: 2,
    end: 6,
    maxLength: 32,
    batch: 1,
  });
  for (const t of [5, 1, 1]) {
    const x = fakeHidden(1, t, 16, t);
    const got = await s.step(x);
    const want = await ref.step(x);
    assert.deepEqual(got.hidden.shape, [1, t, 16]);
    assert.deepEqual(got.hidden.data, want.data);
  }
  assert.equal(sessions.count, 1);
  await s.close();
  await Promise.all(served);
  assert.equal(sessions.count, 0);
  assert.equal(runtime.info().cacheTokensLeft, runtime.info().cacheTokensTotal);
  const snap = metrics.snapshot();
  assert.equal(snap.tokensProcessed, 7);
  assert.equal(snap.requestCount, 1);
  assert.equal(snap.latencySamples, 3);

  // f16 over the wire: the server receives f16-rounded input and replies f16-rounded output
  const s16 = await client.openInference({
    sessionId: "s2",
    model: "m",
    start: 2,
    end: 6,
    maxLength: 8,
    batch: 1,
    dtype: "f16",
  });
  const x = fakeHidden(1, 3, 16, 9);
  const got = await s16.step(x);
  const ref2 = await local.openSession({ start: 2, end: 6, maxLength: 8, batch: 1 });
  const want = await ref2.step({ data: roundToF16(x.data), shape: x.shape });
  assert.deepEqual(got.hidden.data, roundToF16(want.data));
  await s16.close();
  await runtime.stop();
  await local.stop();
});

Deno.test("inference handler: refusals carry stable codes and free everything", async () => {
  const { runtime, client, served, sessions } = setup({ cacheTokens: 100, maxSessions: 2 });
  await runtime.start();
  const code = async (p: Promise<unknown>, c: string) =>
    await assert.rejects(p, (e: unknown) => e instanceof SwarmError && e.code === c);
  await code(
    client.openInference({ sessionId: "a", model: "other", start: 2, end: 6, maxLength: 4, batch: 1 }),
    "WRONG_MODEL",
  );
  await code(
    client.openInference({ sessionId: "a", model: "m", start: 0, end: 6, maxLength: 4, batch: 1 }),
    "SPAN_NOT_SERVED",
  );
  await code(
    client.openInference({ sessionId: "a", model: "m", start: 2, end: 6, maxLength: 26, batch: 1 }),
    "CACHE_FULL",
  );
  const s1 = await client.openInference({
    sessionId: "a",
    model: "m",
    start: 2,
    end: 3,
    maxLength: 4,
    batch: 1,
  });
  const s2 = await client.openInference({
    sessionId: "b",
    model: "m",
    start: 2,
    end: 3,
    maxLength: 4,
    batch: 1,
  });
  await code(
    client.openInference({ sessionId: "c", model: "m", start: 2, end: 3, maxLength: 4, batch: 1 }),
    "SESSION_LIMIT",
  );
  // wrong hidden size in a step → BAD_FRAME, stream closed, session freed
  await code(s1.step(fakeHidden(1, 1, 8)), "BAD_FRAME");
  // too long for maxLength → TOO_LONG (the request's fault: clients route around, ban nobody)
  await code(s2.step(fakeHidden(1, 5, 16)), "TOO_LONG");
  await Promise.all(served);
  assert.equal(sessions.count, 0);
  assert.equal(runtime.info().cacheTokensLeft, 100);
  // forward: works and refuses the wrong span
  const f = await client.forward({ model: "m", start: 3, end: 5, hidden: fakeHidden(1, 4, 16) });
  assert.deepEqual(f.hidden.data, (await runtime.forward(3, 5, fakeHidden(1, 4, 16))).data);
  await code(
    client.forward({ model: "m", start: 5, end: 7, hidden: fakeHidden(1, 4, 16) }),
    "SPAN_NOT_SERVED",
  );
  await runtime.stop();
});

Deno.test("inference handler: out-of-order frames, garbage and idle sessions get an error frame", async () => {
  const { runtime, deps } = setup({ idleMs: 60 });
  await runtime.start();
  deps.sessions.start();
  const run = async (fn: (a: FrameChannel, raw: (b: Uint8Array) => void) => Promise<void>) => {
    const { a, b, rawA } = memoryFrameChannelPair();
    const done = serveInferenceStream(b, deps);
    await fn(a, rawA);
    const reply = await a.read();
    assert.equal(await a.read(), null, "stream closed after the error");
    await done;
    return reply;
  };
  const step = {
    type: "step" as const,
    stepId: 0,
    hidden: { dtype: "f32" as const, shape: [1, 1, 16], data: new Float32Array(16) },
  };
  let r = await run((a) => a.write(step));
  assert.equal(r?.type === "error" && r.code, "BAD_FRAME");
  r = await run((_a, raw) => Promise.resolve(raw(lengthPrefixed(new Uint8Array([9, 2, 0, 0, 0, 6, 7])))));
  assert.equal(r?.type === "error" && r.code, "BAD_FRAME");
  r = await run((_a, raw) => Promise.resolve(raw(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x7f]))));
  assert.equal(r?.type === "error" && r.code, "TOO_LARGE");
  // idle: open, then wait for the server to time the session out
  r = await run(async (a) => {
    await a.write({
      type: "open",
      sessionId: "i",
      model: "m",
      start: 2,
      end: 6,
      maxLength: 4,
      batch: 1,
      dtype: "f32",
    });
    assert.equal((await a.read())?.type, "opened");
  });
  assert.equal(r?.type === "error" && r.code, "TIMEOUT");
  assert.equal(deps.sessions.count, 0);
  await deps.sessions.stop();
  await runtime.stop();
});

Deno.test("inference handler: a client that stops reading its result loses its stream and session after writeMs", async () => {
  const { runtime, sessions, deps } = setup();
  await runtime.start();
  const x = fakeHidden(1, 2, 16);
  const { channel, state } = stalledChannel([
    { type: "open", sessionId: "s", model: "m", start: 2, end: 6, maxLength: 8, batch: 1, dtype: "f32" },
    { type: "step", stepId: 1, hidden: tensor(x.data, x.shape, "f32") },
  ], 1); // "opened" is written; the result waits for a reader that never comes
  await serveInferenceStream(channel, { ...deps, direct: false, writeMs: 50 }); // before: never returned
  assert.equal(state.writes, 2);
  assert.ok(state.aborted, "the stream was dropped");
  assert.equal(sessions.count, 0);
  assert.equal(runtime.info().cacheTokensLeft, runtime.info().cacheTokensTotal);
  await runtime.stop();
});

Deno.test("inference handler: the client's peer id takes its share of the sessions (a quarter stays for others)", async () => {
  const { runtime, client, deps, sessions } = setup({ maxSessions: 4 });
  (deps as { client?: string }).client = "12D3KooWpeer";
  await runtime.start();
  const open = (id: string) =>
    client.openInference({ sessionId: id, model: "m", start: 2, end: 3, maxLength: 4, batch: 1 });
  const held = [await open("a"), await open("b"), await open("c")];
  await assert.rejects(open("d"), (err: unknown) => {
    assert.ok(err instanceof SwarmError && err.code === "SESSION_LIMIT", String(err));
    assert.match(err.message, /client 12D3KooWpeer holds 3 of this server's 4 sessions/);
    return true;
  });
  assert.equal(sessions.count, 3);
  for (const s of held) await s.close();
  await runtime.stop();
});
