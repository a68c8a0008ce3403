import assert from "node:assert/strict";
import { RuntimeError, WireError } from "../errors.ts";
import {
  connectDirect,
  type DirectFrameChannel,
  DirectListener,
  tensor,
  type WireMessage,
} from "../wire/mod.ts";
import { offerDirectHere, serveDirectSteps } from "./direct_steps.ts";
import { FakeBackend, fakeHidden } from "./fake_backend.ts";
import type { DirectStepEvent, HiddenStates, InferenceSession } from "./types.ts";

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

/** A listener on a free loopback port and one attached connection (client and server ends). */
async function connected(): Promise<{
  listener: DirectListener;
  client: DirectFrameChannel;
  server: DirectFrameChannel;
  cleanup: () => Promise<void>;
}> {
  const listener = new DirectListener({ host: "127.0.0.1", port: 0 });
  await listener.start();
  const ticket = listener.offer();
  const client = await connectDirect("127.0.0.1", ticket.offer);
  const server = await ticket.attached;
  assert.ok(server, "the ticket attached a server channel");
  return {
    listener,
    client,
    server,
    cleanup: async () => {
      client.abort();
      server.abort();
      await listener.stop();
    },
  };
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

/** How a client's connection ends after the server closed it: a clean null, or an error. */
async function readEnd(client: DirectFrameChannel): Promise<WireMessage | null | "error"> {
  try {
    return await client.read();
  } catch {
    return "error";
  }
}

Deno.test("serveDirectSteps: steps over a real connection equal the session's own steps; onStep; client close", async () => {
  const served = await backend();
  const ref = await backend();
  const s = await served.openSession({ start: 1, end: 3, maxLength: 16, batch: 2 });
  const r = await ref.openSession({ start: 1, end: 3, maxLength: 16, batch: 2 });
  const { client, server, cleanup } = await connected();
  const events: DirectStepEvent[] = [];
  const serving = serveDirectSteps(server, target(s, 2), (e) => events.push(e));
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
  await cleanup();
  await served.stop();
  await ref.stop();
});

Deno.test("serveDirectSteps: the client ending the connection (no close frame) ends it as closed", async () => {
  const be = await backend();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  await client.close();
  assert.deepEqual(await serving.ended, { kind: "closed" });
  assert.equal(server.writable, false);
  await cleanup();
  await be.stop();
});

Deno.test("serveDirectSteps: a step of the wrong shape → one BAD_FRAME error frame with its stepId, then the end", async () => {
  const be = await backend();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  await client.write(stepMsg(0, fakeHidden(1, 1, H)));
  assert.equal((await client.read())?.type, "result");
  await client.write(stepMsg(7, fakeHidden(1, 2, H + 1)));
  const err = await client.read();
  assert.ok(err?.type === "error", `expected an error frame, got ${err?.type}`);
  assert.equal(err.code, "BAD_FRAME");
  assert.equal(err.stepId, 7);
  assert.match(err.message, /\[1,2,9\]/);
  assert.match(err.message, new RegExp(`\\[1, T, ${H}\\]`));
  assert.equal(await readEnd(client), null, "connection closed after the error frame");
  const ended = await serving.ended;
  assert.equal(ended.kind, "failed");
  assert.ok(ended.kind === "failed");
  assert.equal(ended.code, "BAD_FRAME");
  assert.equal(ended.stepId, 7);
  assert.equal(ended.message, err.message);
  assert.equal(be.stats.steps, 1, "the bad step never reached the session");
  await cleanup();
  await be.stop();
});

Deno.test("serveDirectSteps: a frame other than step/close → BAD_FRAME without a stepId", async () => {
  const be = await backend();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  await client.write({ type: "info_request" });
  const err = await client.read();
  assert.ok(err?.type === "error");
  assert.equal(err.code, "BAD_FRAME");
  assert.equal(err.stepId, undefined);
  assert.match(err.message, /info_request/);
  const ended = await serving.ended;
  assert.ok(ended.kind === "failed");
  assert.equal(ended.code, "BAD_FRAME");
  assert.equal("stepId" in ended, false);
  await cleanup();
  await be.stop();
});

Deno.test("serveDirectSteps: a step past maxLength → BAD_FRAME (the runtime's TOO_LONG mapped)", async () => {
  const be = await backend();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 4, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  await client.write(stepMsg(0, fakeHidden(1, 3, H)));
  assert.equal((await client.read())?.type, "result");
  await client.write(stepMsg(1, fakeHidden(1, 2, H)));
  const err = await client.read();
  assert.ok(err?.type === "error");
  assert.equal(err.code, "BAD_FRAME");
  assert.equal(err.stepId, 1);
  assert.match(err.message, /position 3/);
  assert.match(err.message, /maxLength 4/);
  const ended = await serving.ended;
  assert.ok(ended.kind === "failed");
  assert.equal(ended.code, "BAD_FRAME");
  assert.equal(ended.stepId, 1);
  await cleanup();
  await be.stop();
});

Deno.test("serveDirectSteps: a runtime failure → INTERNAL error frame with the stepId", async () => {
  let fail = false;
  const be = await backend({
    onCompute: () => {
      if (fail) throw new Error("device lost");
    },
  });
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  fail = true;
  await client.write(stepMsg(4, fakeHidden(1, 1, H)));
  const err = await client.read();
  assert.ok(err?.type === "error");
  assert.equal(err.code, "INTERNAL");
  assert.equal(err.stepId, 4);
  assert.equal(err.message, "device lost");
  const ended = await serving.ended;
  assert.ok(ended.kind === "failed");
  assert.equal(ended.code, "INTERNAL");
  await cleanup();
  await be.stop();
});

Deno.test("serveDirectSteps: cancel() closes quietly", async () => {
  const be = await backend();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  await client.write(stepMsg(0, fakeHidden(1, 1, H)));
  assert.equal((await client.read())?.type, "result");
  serving.cancel();
  assert.deepEqual(await serving.ended, { kind: "closed" });
  const end = await readEnd(client);
  assert.ok(end === null || end === "error", `no frame after a quiet cancel, got ${JSON.stringify(end)}`);
  assert.equal(server.writable, false);
  await cleanup();
  await be.stop();
});

Deno.test("serveDirectSteps: cancel with an error sends that error frame", async () => {
  const be = await backend();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const { client, server, cleanup } = await connected();
  const serving = serveDirectSteps(server, target(s, 1));
  serving.cancel({ error: { code: "TIMEOUT", message: "session idle for 61 ms", hint: "open a new one" } });
  // a second cancel does not replace the first reason
  serving.cancel();
  const err = await client.read();
  assert.ok(err?.type === "error", `expected an error frame, got ${err?.type}`);
  assert.equal(err.code, "TIMEOUT");
  assert.equal(err.message, "session idle for 61 ms");
  assert.equal(err.hint, "open a new one");
  assert.equal(err.stepId, undefined);
  assert.equal(await readEnd(client), null);
  assert.deepEqual(await serving.ended, {
    kind: "failed",
    code: "TIMEOUT",
    message: "session idle for 61 ms",
  });
  await cleanup();
  await be.stop();
});

Deno.test("offerDirectHere: an offer that attaches serves the session; one cancelled first never attaches", async () => {
  const be = await backend();
  const ref = await backend();
  const listener = new DirectListener({ host: "127.0.0.1", port: 0 });
  await listener.start();
  const s = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const r = await ref.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const events: DirectStepEvent[] = [];
  const serving = offerDirectHere(listener, s, H, { dtype: "f32", onStep: (e) => events.push(e) });
  assert.equal(serving.offer.port, listener.port);
  assert.match(serving.offer.ticket, /^[A-Za-z0-9_-]{43}$/);
  assert.match(serving.offer.key, /^[A-Za-z0-9_-]{43}$/);
  assert.notEqual(serving.offer.ticket, serving.offer.key);
  assert.equal(listener.openOffers, 1);
  const client = await connectDirect("127.0.0.1", serving.offer);
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
    connectDirect("127.0.0.1", lapsed.offer, { ackMs: 2_000 }),
    (e: unknown) =>
      e instanceof WireError && e.code === "DIRECT_FAILED" &&
      e.message.includes(`127.0.0.1:${listener.port}`) &&
      e.hint.length > 0,
  );

  // cancelQuietly on an attached offer ends its connection without an error frame
  const s3 = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const third = offerDirectHere(listener, s3, H, { dtype: "f32" });
  const c3 = await connectDirect("127.0.0.1", third.offer);
  assert.equal(await third.attached, true);
  third.cancelQuietly();
  assert.deepEqual(await third.ended, { kind: "closed" });
  const end = await readEnd(c3);
  assert.ok(end === null || end === "error");
  c3.abort();

  // cancel with an error on an attached offer sends it
  const s4 = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
  const fourth = offerDirectHere(listener, s4, H, { dtype: "f32" });
  const c4 = await connectDirect("127.0.0.1", fourth.offer);
  assert.equal(await fourth.attached, true);
  fourth.cancel({ code: "TIMEOUT", message: "server stopping" });
  const err = await c4.read();
  assert.ok(err?.type === "error");
  assert.equal(err.code, "TIMEOUT");
  assert.equal(err.message, "server stopping");
  assert.equal((await fourth.ended).kind, "failed");
  c4.abort();

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
  const client = await connectDirect("127.0.0.1", serving.offer);
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
