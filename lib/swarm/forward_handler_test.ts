/**
 * `/plumise/forward/1.0.0` under load: at most `maxConcurrent` forwards reach the runtime (so the
 * runtime Worker's queue never holds more, and an inference step waits behind at most that many),
 * at most `maxQueued` wait at the swarm side, the rest are refused with BUSY at once; queued work
 * whose deadline passed, or whose requester gave up, is dropped before it reaches the runtime.
 */
import assert from "node:assert/strict";
import { FakeBackend, fakeHidden, stalledChannel } from "../testing/mod.ts";
import { memoryLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import { tensor, type WireMessage } from "../wire/mod.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";
import { type FrameChannel, memoryFrameChannelPair } from "./frame_channel.ts";
import { ForwardGate } from "./forward_gate.ts";
import { serveForwardStream } from "./forward_handler.ts";

/** A runtime whose forwards wait until released, counting how many are inside at once. */
async function heldRuntime() {
  let inside = 0, most = 0;
  let release!: () => void;
  let released = new Promise<void>((r) => (release = r));
  const runtime = new FakeBackend({
    modelId: "m",
    numBlocks: 8,
    start: 2,
    end: 6,
    hiddenSize: 16,
    onCompute: async (e) => {
      if (e.kind !== "forward") return;
      most = Math.max(most, ++inside);
      try {
        await released;
      } finally {
        inside--;
      }
    },
  });
  await runtime.start();
  return {
    runtime,
    get inside() {
      return inside;
    },
    get most() {
      return most;
    },
    release() {
      release();
      released = new Promise<void>((r) => (release = r));
    },
  };
}

function forwardMsg(extra: Record<string, unknown> = {}): WireMessage {
  const x = fakeHidden(1, 4, 16);
  return {
    type: "forward",
    model: "m",
    start: 2,
    end: 6,
    hidden: tensor(x.data, x.shape, "f32"),
    ...extra,
  } as WireMessage;
}

/** Sends one forward over an in-memory stream served with `gate`; the client's end and the serving promise. */
async function send(runtime: FakeBackend, gate: ForwardGate, extra: Record<string, unknown> = {}) {
  const { logger } = memoryLogger();
  const { a, b } = memoryFrameChannelPair();
  const served = serveForwardStream(b, {
    runtime,
    model: "m",
    metrics: new Metrics(),
    logger,
    forwards: gate,
  });
  await a.write(forwardMsg(extra));
  return { client: a as FrameChannel, served };
}

Deno.test("forward: at most maxConcurrent reach the runtime, maxQueued wait, the rest are BUSY at once; steps pass", async () => {
  const held = await heldRuntime();
  const gate = new ForwardGate({ maxConcurrent: 1, maxQueued: 2 });
  const sent: Awaited<ReturnType<typeof send>>[] = [];
  for (let i = 0; i < 6; i++) sent.push(await send(held.runtime, gate));
  await waitFor(() => held.inside === 1 && gate.queued === 2, { what: "one forward inside, two queued" });
  // the three beyond the queue are answered at once, while the first is still held
  const busy = await Promise.all(sent.slice(3).map((s) => s.client.read()));
  for (const r of busy) assert.ok(r?.type === "error" && r.code === "BUSY", JSON.stringify(r));
  // an inference step is not held behind the queued forwards
  const session = await held.runtime.openSession({ start: 2, end: 6, maxLength: 8, batch: 1 });
  await session.step(fakeHidden(1, 1, 16));
  assert.equal(held.inside, 1);
  for (let i = 0; i < 3; i++) {
    await waitFor(() => held.inside === 1, { what: `forward ${i} inside` });
    held.release();
    const r = await sent[i].client.read();
    assert.equal(r?.type, "forward_result", JSON.stringify(r));
  }
  await Promise.all(sent.map((s) => s.served));
  assert.equal(held.most, 1, "never more than maxConcurrent forwards in the runtime");
  assert.equal(held.runtime.stats.forwards, 3);
  await session.close();
  await held.runtime.stop();
});

Deno.test("forward: queued work whose deadline passed, or whose requester gave up, never reaches the runtime", async () => {
  const held = await heldRuntime();
  let now = 0;
  const gate = new ForwardGate({ maxConcurrent: 1, maxQueued: 8 }, { now: () => now });
  const first = await send(held.runtime, gate);
  await waitFor(() => held.inside === 1, { what: "the first forward inside" });
  const late = await send(held.runtime, gate, { timeoutMs: 60_000 }); // its requester waits 60 s
  const patient = await send(held.runtime, gate);
  const gone = await send(held.runtime, gate);
  await waitFor(() => gate.queued === 3, { what: "three queued" });
  gone.client.abort(); // the requester gives up (its stream is reset)
  await waitFor(() => gate.queued === 2, { what: "the abandoned forward left the queue" });
  now = 90_000; // the late one's deadline passed while it waited; the server's own (120 s) did not
  held.release();
  assert.equal((await first.client.read())?.type, "forward_result");
  const expired = await late.client.read();
  assert.ok(expired?.type === "error" && expired.code === "TIMEOUT", JSON.stringify(expired));
  await waitFor(() => held.inside === 1, { what: "the patient forward inside" });
  held.release();
  assert.equal((await patient.client.read())?.type, "forward_result");
  await Promise.all([first, late, patient, gone].map((s) => s.served));
  assert.equal(held.runtime.stats.forwards, 2, "only the first and the patient one were computed");
  await held.runtime.stop();
});

Deno.test("forward: a requester that stops reading frees the runtime's slot at once and the stream after writeMs", async () => {
  const held = await heldRuntime();
  const gate = new ForwardGate({ maxConcurrent: 1, maxQueued: 0 });
  const { channel, state } = stalledChannel([forwardMsg()]);
  const served = serveForwardStream(channel, {
    runtime: held.runtime,
    model: "m",
    metrics: new Metrics(),
    logger: memoryLogger().logger,
    forwards: gate,
    writeMs: 50,
  });
  await waitFor(() => held.inside === 1, { what: "the forward inside" });
  held.release();
  await waitFor(() => state.writes === 1, { what: "the reply being written" });
  assert.equal(gate.running, 0, "the slot is free while the reply waits for the requester");
  await served; // before: the write waited forever, holding the slot
  assert.ok(state.aborted, "the stream was dropped");
  // an honest forward gets the slot
  const next = await send(held.runtime, gate);
  await waitFor(() => held.inside === 1, { what: "the next forward inside" });
  held.release();
  assert.equal((await next.client.read())?.type, "forward_result");
  await next.served;
  await held.runtime.stop();
});
