import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import {
  assertEnds,
  assertWireError,
  connected,
  FakeBackend,
  fakeHidden,
  HOST,
  readEnd,
  readErrorFrame,
  started,
} from "../testing/mod.ts";
import { connectDirect, type DirectListener, tensor } from "../wire/mod.ts";
import { offerDirectHere, serveDirectSteps } from "./direct_steps.ts";
import type { DirectEnd, DirectStepEvent, HiddenStates, InferenceSession } from "./types.ts";

const H = 8;

async function backend(opts: { onCompute?: () => void } = {}): Promise<FakeBackend> {
  const be = new FakeBackend({
    hiddenSize: H,
    numBlocks: 4,
    start: 1,
    end: 3,
    maxLength: 64,
    onCompute: opts.onCompute,
  });
  await be.start();
  return be;
}

/** A session as serveDirectSteps' target (what offerDirectHere builds). */
function target(session: InferenceSession, batch: number) {
  return {
    batch,
    hiddenSize: H,
    dtype: "f32" as const,
    step: (
      hidden: { data: Float32Array; shape: [number, number, number] },
      startFromPosition?: number,
      hypoIds?: number[],
    ) => session.step(hidden, { startFromPosition, hypoIds }),
  };
}

function stepMsg(
  id: number,
  x: HiddenStates,
  extra: { startFromPosition?: number; hypoIds?: number[] } = {},
) {
  return { type: "step" as const, stepId: id, hidden: tensor(x.data, x.shape, "f32"), ...extra };
}

/**
 * A FakeBackend session on blocks [1, 3) served by serveDirectSteps over a fresh loopback
 * connection; `close` tears the connection and the backend down.
 */
async function servedSession(
  opts: {
    maxLength?: number;
    batch?: number;
    onCompute?: () => void;
    onStep?: (e: DirectStepEvent) => void;
  } = {},
) {
  const be = await backend(opts);
  const batch = opts.batch ?? 1;
  const s = await be.openSession({ start: 1, end: 3, maxLength: opts.maxLength ?? 16, batch });
  const conn = await connected();
  const serving = serveDirectSteps(conn.server, target(s, batch), opts.onStep);
  const close = async () => {
    await conn.close();
    await be.stop();
  };
  return { be, client: conn.client, server: conn.server, serving, close };
}

/** Checks that `serving` ended as failed with `code`; returns how it ended. */
async function endedFailed(
  serving: { ended: Promise<DirectEnd> },
  code: string,
): Promise<Extract<DirectEnd, { kind: "failed" }>> {
  const ended = await serving.ended;
  assert.ok(ended.kind === "failed", `expected a failed end, got ${JSON.stringify(ended)}`);
  assert.equal(ended.code, code);
  return ended;
}

Deno.test("serveDirectSteps: steps over a real connection equal the session's own steps; onStep; client close", async () => {
  const events: DirectStepEvent[] = [];
  const { be: served, client, serving, close } = await servedSession({
    batch: 2,
    onStep: (e) => events.push(e),
  });
  const ref = await backend();
  const r = await ref.openSession({ start: 1, end: 3, maxLength: 16, batch: 2 });
  const steps: [HiddenStates, { startFromPosition?: number; hypoIds?: number[] }][] = [
    [fakeHidden(2, 4, H, 1), {}],
    [fakeHidden(2, 1, H, 2), {}],
    // rollback and reorder travel with the step
    [fakeHidden(2, 2, H, 3), { startFromPosition: 3, hypoIds: [1, 0] }],
  ];
  for (const [id, [x, extra]] of steps.entries()) {
    await client.write(stepMsg(id, x, extra));
    const got = await client.read();
    const want = await r.step(x, extra);
    assert.ok(got?.type === "result", `result for step ${id}, got ${got?.type}`);
    assert.equal(got.stepId, id);
    assert.deepEqual(got.hidden.shape, want.shape);
    assert.deepEqual(got.hidden.data, want.data);
    assert.ok(got.computeMs >= 0);
  }
  assert.deepEqual(events.map((e) => e.tokens), [8, 2, 4]);
  assert.ok(events.every((e) => typeof e.computeMs === "number" && e.computeMs >= 0));
  assert.equal(served.stats.steps, 3);
  await client.write({ type: "close" });
  assert.deepEqual(await serving.ended, { kind: "closed" });
  assert.equal(await readEnd(client), null, "the server closed the connection after close");
  await close();
  await ref.stop();
});

Deno.test("serveDirectSteps: the client ending the connection (no close frame) ends it as closed", async () => {
  const { client, server, serving, close } = await servedSession();
  await client.close();
  assert.deepEqual(await serving.ended, { kind: "closed" });
  assert.equal(server.writable, false);
  await close();
});

Deno.test("serveDirectSteps: a step of the wrong shape → one BAD_FRAME error frame with its stepId, then the end", async () => {
  const { be, client, serving, close } = await servedSession();
  await client.write(stepMsg(0, fakeHidden(1, 1, H)));
  assert.equal((await client.read())?.type, "result");
  await client.write(stepMsg(7, fakeHidden(1, 2, H + 1)));
  const err = await readErrorFrame(client, "BAD_FRAME");
  assert.equal(err.stepId, 7);
  assert.match(err.message, /\[1,2,9\]/);
  assert.match(err.message, new RegExp(`\\[1, T, ${H}\\]`));
  assert.equal(await readEnd(client), null, "connection closed after the error frame");
  const ended = await endedFailed(serving, "BAD_FRAME");
  assert.equal(ended.stepId, 7);
  assert.equal(ended.message, err.message);
  assert.equal(be.stats.steps, 1, "the bad step never reached the session");
  await close();
});

Deno.test("serveDirectSteps: a frame other than step/close → BAD_FRAME without a stepId", async () => {
  const { client, serving, close } = await servedSession();
  await client.write({ type: "info_request" });
  const err = await readErrorFrame(client, "BAD_FRAME");
  assert.equal(err.stepId, undefined);
  assert.match(err.message, /info_request/);
  const ended = await endedFailed(serving, "BAD_FRAME");
  assert.equal("stepId" in ended, false);
  await close();
});

Deno.test("serveDirectSteps: a step past maxLength → TOO_LONG (the request's fault: routed around, no ban)", async () => {
  const { client, serving, close } = await servedSession({ maxLength: 4 });
  await client.write(stepMsg(0, fakeHidden(1, 3, H)));
  assert.equal((await client.read())?.type, "result");
  await client.write(stepMsg(1, fakeHidden(1, 2, H)));
  const err = await readErrorFrame(client, "TOO_LONG");
  assert.equal(err.stepId, 1);
  assert.match(err.message, /position 3/);
  assert.match(err.message, /maxLength 4/);
  const ended = await endedFailed(serving, "TOO_LONG");
  assert.equal(ended.stepId, 1);
  await close();
});

Deno.test("serveDirectSteps: a runtime failure → INTERNAL error frame with the stepId", async () => {
  let fail = false;
  const { client, serving, close } = await servedSession({
    onCompute: () => {
      if (fail) throw new Error("device lost");
    },
  });
  fail = true;
  await client.write(stepMsg(4, fakeHidden(1, 1, H)));
  const err = await readErrorFrame(client, "INTERNAL");
  assert.equal(err.stepId, 4);
  assert.equal(err.message, "device lost");
  await endedFailed(serving, "INTERNAL");
  await close();
});

Deno.test("serveDirectSteps: cancel() closes quietly", async () => {
  const { client, server, serving, close } = await servedSession();
  await client.write(stepMsg(0, fakeHidden(1, 1, H)));
  assert.equal((await client.read())?.type, "result");
  serving.cancel();
  assert.deepEqual(await serving.ended, { kind: "closed" });
  await assertEnds(client, "no frame after a quiet cancel");
  assert.equal(server.writable, false);
  await close();
});

Deno.test("serveDirectSteps: cancel with an error sends that error frame", async () => {
  const { client, serving, close } = await servedSession();
  serving.cancel({ error: { code: "TIMEOUT", message: "session idle for 61 ms", hint: "open a new one" } });
  // a second cancel does not replace the first reason
  serving.cancel();
  const err = await readErrorFrame(client, "TIMEOUT");
  assert.equal(err.message, "session idle for 61 ms");
  assert.equal(err.hint, "open a new one");
  assert.equal(err.stepId, undefined);
  assert.equal(await readEnd(client), null);
  assert.deepEqual(await serving.ended, {
    kind: "failed",
    code: "TIMEOUT",
    message: "session idle for 61 ms",
  });
  await close();
});

/** A fresh session of `be` offered on `listener` (offerDirectHere), and a client attached to it. */
async function attachedOffer(be: FakeBackend, listener: DirectListener) {
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const serving = offerDirectHere(listener, s, H, { dtype: "f32" });
  const client = await connectDirect(HOST, serving.offer);
  assert.equal(await serving.attached, true);
  return { serving, client };
}

Deno.test("offerDirectHere: an offer that attaches serves the session; one cancelled first never attaches", async () => {
  const be = await backend();
  const ref = await backend();
  const listener = await started();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const r = await ref.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const events: DirectStepEvent[] = [];
  const serving = offerDirectHere(listener, s, H, { dtype: "f32", onStep: (e) => events.push(e) });
  assert.equal(serving.offer.port, listener.port);
  assert.match(serving.offer.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.match(serving.offer.key, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(serving.offer.ticket, serving.offer.key);
  assert.equal(listener.openOffers, 1);
  const client = await connectDirect(HOST, serving.offer);
  assert.equal(await serving.attached, true);
  assert.equal(listener.openOffers, 0);
  for (const [id, t] of [3, 1].entries()) {
    const x = fakeHidden(1, t, H, 10 + id);
    await client.write(stepMsg(id, x));
    const got = await client.read();
    assert.ok(got?.type === "result");
    assert.deepEqual(got.hidden.data, (await r.step(x)).data);
  }
  assert.deepEqual(events.map((e) => e.tokens), [3, 1]);
  await client.write({ type: "close" });
  assert.deepEqual(await serving.ended, { kind: "closed" });
  client.abort();

  // cancelled before anyone attached: attached → false, the ticket is dead
  const s2 = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const lapsed = offerDirectHere(listener, s2, H, { dtype: "f32" });
  lapsed.cancel();
  assert.equal(await lapsed.attached, false);
  assert.equal(listener.openOffers, 0);
  await assert.rejects(
    connectDirect(HOST, lapsed.offer, { ackMs: 2_000 }),
    (e) => assertWireError(e, "DIRECT_FAILED", new RegExp(`127\\.0\\.0\\.1:${listener.port}`)),
  );

  // cancel() without an error on an attached offer ends its connection without an error frame
  const third = await attachedOffer(be, listener);
  third.serving.cancel();
  assert.deepEqual(await third.serving.ended, { kind: "closed" });
  await assertEnds(third.client, "no frame after a quiet cancel()");
  third.client.abort();

  // cancel with an error on an attached offer sends it
  const fourth = await attachedOffer(be, listener);
  fourth.serving.cancel({ code: "TIMEOUT", message: "server stopping" });
  const err = await readErrorFrame(fourth.client, "TIMEOUT");
  assert.equal(err.message, "server stopping");
  assert.equal((await fourth.serving.ended).kind, "failed");
  fourth.client.abort();

  await listener.stop();
  await be.stop();
  await ref.stop();
});

Deno.test("FakeBackend with direct: sessions offer a direct path on its listener; without it NO_DIRECT", async () => {
  const be = new FakeBackend({ hiddenSize: H, numBlocks: 4, direct: { host: "127.0.0.1", port: 0 } });
  await be.start();
  const port = be.info().directPort;
  assert.ok(typeof port === "number" && port > 0);
  const s = await be.openSession({ start: 0, end: 4, maxLength: 8, batch: 1 });
  assert.ok(s.offerDirect);
  const serving = await s.offerDirect({ dtype: "f32" });
  assert.equal(serving.offer.port, port);
  const client = await connectDirect(HOST, serving.offer);
  assert.equal(await serving.attached, true);
  await client.write(stepMsg(0, fakeHidden(1, 2, H)));
  assert.equal((await client.read())?.type, "result");
  // closing the session ends its direct connection quietly
  await s.close();
  assert.deepEqual(await serving.ended, { kind: "closed" });
  client.abort();
  await be.stop();
  assert.equal(be.info().directPort, undefined);

  const plain = await backend();
  const p = await plain.openSession({ start: 1, end: 3, maxLength: 8, batch: 1 });
  await assert.rejects(
    p.offerDirect!({ dtype: "f32" }),
    (e: unknown) =>
      e instanceof RuntimeError && e.code === "NO_DIRECT" &&
      /without a direct-path listener/.test(e.message) &&
      e.hint.length > 0,
  );
  await plain.stop();
});

/**
 * A session whose results are 4 MiB (hidden 1024 × 1024 tokens), served over a loopback connection;
 * its client sends `n` steps without waiting (the server reads them as it goes) and never reads.
 * Resolves once the server is stuck writing a result nobody reads (`steps`: results written so far).
 */
async function stuckWriting(n: number) {
  const hidden = 1024, tokens = 1024; // the socket's buffers fill after a few results
  const be = new FakeBackend({ hiddenSize: hidden, numBlocks: 4, start: 1, end: 3, maxLength: 8 * tokens });
  await be.start();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 8 * tokens, batch: 1 });
  const conn = await connected();
  const counter = { steps: 0 };
  const serving = serveDirectSteps(
    conn.server,
    { ...target(s, 1), hiddenSize: hidden },
    () => counter.steps++,
  );
  for (let i = 0; i < n; i++) {
    void conn.client.write({
      type: "step",
      stepId: i,
      hidden: tensor(fakeHidden(1, tokens, hidden, i).data, [1, tokens, hidden], "f32"),
    }).catch(() => {});
  }
  let before = -1;
  while (counter.steps !== before) {
    before = counter.steps;
    await new Promise((r) => setTimeout(r, 300));
  }
  const close = async () => {
    await conn.close();
    await be.stop();
  };
  return { conn, serving, counter, close };
}

Deno.test("serveDirectSteps: cancel() ends a session whose client stopped reading, under a blocked write", async () => {
  const { conn, serving, counter, close } = await stuckWriting(8);
  try {
    assert.ok(counter.steps < 8, `the server wrote all ${counter.steps} results: the socket never filled`);
    // the session's end (idle timeout, control stream) cancels: the write is dropped with the connection
    serving.cancel();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      serving.ended,
      new Promise((r) => (timer = setTimeout(() => r("still serving after 5 s"), 5000))),
    ]);
    clearTimeout(timer);
    assert.deepEqual(outcome, { kind: "closed" });
    assert.equal(conn.server.writable, false);
  } finally {
    await close();
  }
});

Deno.test("serveDirectSteps: a cancel with an error lets a result being written finish, then sends the error", async () => {
  const { conn, serving, counter, close } = await stuckWriting(4);
  try {
    const atCancel = counter.steps;
    serving.cancel({ error: { code: "TIMEOUT", message: "session open for 1800000 ms (age cap)" } });
    // the client reads on: whole results, then the error (before: a truncated frame, BAD_FRAME)
    const seen: string[] = [];
    for (;;) {
      const m = await conn.client.read();
      if (m === null) break;
      seen.push(m.type === "error" ? `error ${m.code}` : m.type);
      if (m.type === "error") break;
    }
    assert.equal(seen.at(-1), "error TIMEOUT", seen.join(", "));
    assert.ok(seen.slice(0, -1).every((t) => t === "result"));
    assert.deepEqual(await serving.ended, {
      kind: "failed",
      code: "TIMEOUT",
      message: "session open for 1800000 ms (age cap)",
    });
    // the steps sent ahead were not run after the cancel (only the one being written finished)
    assert.ok(counter.steps - atCancel <= 1, `${counter.steps - atCancel} steps ran after the cancel`);
  } finally {
    await close();
  }
});
