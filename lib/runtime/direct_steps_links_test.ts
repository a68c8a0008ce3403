/**
 * Links between served sessions (`DirectLinks`): steps pushed server to server over real loopback
 * connections, the reply with the trail of outputs, and every way a link can fail without
 * harming the sessions.
 */
import assert from "node:assert/strict";
import { attach, FakeBackend, fakeHidden, HOST, readEnd, readErrorFrame, started } from "../testing/mod.ts";
import {
  connectDirect,
  type DirectFrameChannel,
  type DirectListener,
  type LinkOfferMessage,
  tensor,
  type WireLimits,
  wireLimits,
  type WireMessage,
} from "../wire/mod.ts";
import { type ServedDirect, serveDirectSteps } from "./direct_steps.ts";
import type { HiddenStates, InferenceSession } from "./types.ts";

const H = 8;

/** One served session on its own listener (the listener offers its input links). */
interface Hop {
  listener: DirectListener;
  client: DirectFrameChannel;
  serving: ServedDirect;
  session: InferenceSession;
}

/** `n` sessions of blocks [1, 3) of one FakeBackend, each served with links. */
async function route(n: number, links: { maxInputs?: number } = {}, listening: { limits?: WireLimits } = {}) {
  const be = new FakeBackend({ hiddenSize: H, numBlocks: 4, start: 1, end: 3, maxLength: 64 });
  await be.start();
  const hops: Hop[] = [];
  for (let i = 0; i < n; i++) {
    const listener = await started(listening);
    const { client, server } = await attach(listener.offer(), listening);
    const session = await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 });
    const serving = serveDirectSteps(
      server,
      {
        batch: 1,
        hiddenSize: H,
        dtype: "f32",
        step: (hidden, startFromPosition, hypoIds) => session.step(hidden, { startFromPosition, hypoIds }),
      },
      undefined,
      { listener, ...links },
    );
    hops.push({ listener, client, serving, session });
  }
  return {
    be,
    hops,
    async close() {
      for (const h of hops) {
        h.serving.cancel();
        await h.serving.ended;
        h.client.abort();
        await h.listener.stop();
      }
      await be.stop();
    },
  };
}

/** The reference: the same steps on fresh sessions, one after the other. */
async function reference(n: number, steps: HiddenStates[]): Promise<HiddenStates[][]> {
  const be = new FakeBackend({ hiddenSize: H, numBlocks: 4, start: 1, end: 3, maxLength: 64 });
  await be.start();
  const sessions = [];
  for (let i = 0; i < n; i++) {
    sessions.push(await be.openSession({ start: 1, end: 3, maxLength: 16, batch: 1 }));
  }
  const outs: HiddenStates[][] = [];
  for (const x of steps) {
    const row: HiddenStates[] = [];
    let y = x;
    for (const s of sessions) row.push(y = await s.step(y));
    outs.push(row);
  }
  await be.stop();
  return outs;
}

async function reply<T extends WireMessage["type"]>(ch: DirectFrameChannel, type: T) {
  const m = await ch.read();
  assert.ok(m?.type === type, `expected ${type}, got ${JSON.stringify(m?.type === "error" ? m : m?.type)}`);
  return m as Extract<WireMessage, { type: T }>;
}

/** Links `from` → `to` the way the client does; returns the input link's number at `to`. */
async function link(from: Hop, to: Hop): Promise<number> {
  await to.client.write({ type: "link_request" });
  const offer = await reply(to.client, "link_offer");
  await from.client.write({
    type: "link_to",
    host: HOST,
    port: offer.port,
    ticket: offer.ticket,
    key: offer.key,
  });
  const linked = await reply(from.client, "linked");
  assert.equal(linked.ok, true, linked.reason);
  return offer.link;
}

const step = (
  stepId: number,
  x: HiddenStates,
  extra: { push?: number; startFromPosition?: number } = {},
) => ({
  type: "step" as const,
  stepId,
  hidden: tensor(x.data, x.shape, "f32"),
  ...extra,
});

/** Rows `[i·B, (i+1)·B)` of a result's hidden: part i of its trail (the last part: the output). */
function part(m: Extract<WireMessage, { type: "result" }>, i: number): Float32Array {
  const [rows, t, h] = m.hidden.shape;
  const n = (rows / ((m.trail ?? 0) + 1)) * t * h;
  return m.hidden.data.subarray(i * n, (i + 1) * n);
}

Deno.test("links: a pushed step runs on every linked session; only the last replies, with every output; equal to one by one", async () => {
  const r = await route(3);
  const [a, b, c] = r.hops;
  try {
    assert.deepEqual([await link(a, b), await link(b, c)], [0, 0]);
    const xs = [fakeHidden(1, 3, H, 1), fakeHidden(1, 1, H, 2), fakeHidden(1, 1, H, 3)];
    const want = await reference(3, xs);
    for (const [id, x] of xs.entries()) {
      await a.client.write(step(id, x, { push: 2, startFromPosition: [0, 3, 4][id] }));
      const got = await reply(c.client, "result");
      assert.equal(got.stepId, id);
      assert.equal(got.pushed, true);
      assert.equal(got.trail, 2);
      assert.deepEqual(got.hidden.shape, [3, x.shape[1], H]);
      for (let k = 0; k < 3; k++) assert.deepEqual(part(got, k), want[id][k].data, `step ${id}, span ${k}`);
    }
    // the pushed-through sessions sent their clients nothing: their next reply is to a new step
    await a.client.write(step(3, fakeHidden(1, 1, H, 4)));
    assert.equal((await reply(a.client, "result")).stepId, 3);
    await b.client.write(step(3, fakeHidden(1, 1, H, 4)));
    const own = await reply(b.client, "result");
    assert.equal(own.stepId, 3);
    assert.equal(own.pushed, undefined);
    assert.deepEqual([a.session.position, b.session.position, c.session.position], [6, 6, 5]);
  } finally {
    await r.close();
  }
});

Deno.test("links: push 1 of 2 stops at the middle session, which replies with the trail so far", async () => {
  const r = await route(3);
  const [a, b, c] = r.hops;
  try {
    await link(a, b);
    await link(b, c);
    const x = fakeHidden(1, 2, H, 9);
    const [want] = await reference(2, [x]);
    await a.client.write(step(0, x, { push: 1 }));
    const got = await reply(b.client, "result");
    assert.deepEqual([got.stepId, got.pushed, got.trail], [0, true, 1]);
    assert.deepEqual(part(got, 0), want[0].data);
    assert.deepEqual(part(got, 1), want[1].data);
    assert.equal(c.session.position, 0, "the last session never got the step");
  } finally {
    await r.close();
  }
});

Deno.test("links: without a link (link_to a closed port) the server replies itself; link_to says why", async () => {
  const r = await route(2);
  const [a, b] = r.hops;
  try {
    await b.client.write({ type: "link_request" });
    const offer = await reply(b.client, "link_offer");
    const dead = await started();
    const port = dead.port;
    await dead.stop();
    await a.client.write({ type: "link_to", host: HOST, port, ticket: offer.ticket, key: offer.key });
    const linked = await reply(a.client, "linked");
    assert.equal(linked.ok, false);
    assert.match(linked.reason!, new RegExp(`${HOST}:${port}`));
    await a.client.write(step(0, fakeHidden(1, 1, H), { push: 1 }));
    const own = await reply(a.client, "result");
    assert.deepEqual([own.stepId, own.pushed, own.trail], [0, undefined, undefined]);
    assert.equal(b.session.position, 0);
  } finally {
    await r.close();
  }
});

Deno.test("links: a pushed step at or below the last step run is stale and dropped; the client's own steps always run", async () => {
  const r = await route(2);
  const [a, b] = r.hops;
  try {
    await link(a, b);
    const x = fakeHidden(1, 1, H, 5);
    // the client ran step 4 on b itself (e.g. after giving up on a push); a late push of 4 is dropped
    await b.client.write(step(4, x));
    assert.equal((await reply(b.client, "result")).stepId, 4);
    await a.client.write(step(4, x, { push: 1, startFromPosition: 0 }));
    // b's next reply is to the client's step 5: nothing came of the stale push
    await b.client.write(step(5, fakeHidden(1, 1, H, 6)));
    const next = await reply(b.client, "result");
    assert.deepEqual([next.stepId, next.pushed], [5, undefined]);
    assert.equal(b.session.position, 2);
    // and a client step with an id already pushed still runs (both roll the cache back to 1)
    await a.client.write(step(6, x, { push: 1, startFromPosition: 1 }));
    assert.equal((await reply(b.client, "result")).pushed, true);
    await b.client.write(step(6, x, { startFromPosition: 1 }));
    const again = await reply(b.client, "result");
    assert.deepEqual([again.stepId, again.pushed], [6, undefined]);
    assert.deepEqual([a.session.position, b.session.position], [2, 2]);
  } finally {
    await r.close();
  }
});

Deno.test("links: a bad frame on an input link ends that link only (link_lost with its number); the session goes on", async () => {
  const r = await route(1);
  const [b] = r.hops;
  try {
    for (
      const [i, bad] of [
        { type: "close" } as WireMessage,
        step(1, fakeHidden(1, 1, H + 1)), // wrong hidden size
        step(1, fakeHidden(2, 1, H)), // two rows for batch 1 without a trail
      ].entries()
    ) {
      await b.client.write({ type: "link_request" });
      const offer: LinkOfferMessage = await reply(b.client, "link_offer");
      assert.equal(offer.link, i);
      // the test plays the previous server of the route
      const up = await connectDirect(HOST, offer);
      await up.write(bad);
      assert.deepEqual(await reply(b.client, "link_lost"), { type: "link_lost", link: i });
      assert.equal(await readEnd(up), null, "the link was closed");
    }
    // an input link that just ends is lost too
    await b.client.write({ type: "link_request" });
    const offer = await reply(b.client, "link_offer");
    const up = await connectDirect(HOST, offer);
    await up.close();
    assert.deepEqual(await reply(b.client, "link_lost"), { type: "link_lost", link: 3 });
    await b.client.write(step(0, fakeHidden(1, 1, H)));
    assert.equal((await reply(b.client, "result")).stepId, 0);
  } finally {
    await r.close();
  }
});

Deno.test("links: input links are capped (maxInputs); a server without links refuses; a client step with a trail is BAD_FRAME", async () => {
  const r = await route(1, { maxInputs: 1 });
  const [b] = r.hops;
  try {
    await b.client.write({ type: "link_request" });
    await reply(b.client, "link_offer");
    await b.client.write({ type: "link_request" });
    const full = await reply(b.client, "linked");
    assert.equal(full.ok, false);
    assert.match(full.reason!, /at most 1/);
    await b.client.write({ ...step(3, fakeHidden(2, 1, H)), trail: 1 });
    const err = await readErrorFrame(b.client, "BAD_FRAME");
    assert.match(err.message, /only a pushed step carries a trail/);
    assert.equal(err.stepId, 3);
  } finally {
    await r.close();
  }

  const be = new FakeBackend({ hiddenSize: H, numBlocks: 4, start: 1, end: 3 });
  await be.start();
  const listener = await started();
  const { client, server } = await attach(listener.offer());
  const s = await be.openSession({ start: 1, end: 3, maxLength: 8, batch: 1 });
  const serving = serveDirectSteps(server, {
    batch: 1,
    hiddenSize: H,
    dtype: "f32",
    step: (hidden) => s.step(hidden),
  });
  try {
    await client.write({ type: "link_request" });
    const no = await reply(client, "linked");
    assert.deepEqual([no.ok, /does not take pushed input/.test(no.reason!)], [false, true]);
    await client.write({ type: "link_to", host: HOST, port: 9, ticket: "A".repeat(43), key: "A".repeat(43) });
    const no2 = await reply(client, "linked");
    assert.deepEqual([no2.ok, /does not push/.test(no2.reason!)], [false, true]);
  } finally {
    serving.cancel();
    await serving.ended;
    client.abort();
    await listener.stop();
    await be.stop();
  }
});

Deno.test("links: a pushed step that cannot run ends its link, not the session; a step with hypoIds is not pushed on", async () => {
  const r = await route(2);
  const [a, b] = r.hops;
  try {
    const number = await link(a, b);
    // b has no position 5 to roll back to: the upstream's push is at fault, so only the link goes
    await a.client.write(step(0, fakeHidden(1, 1, H)));
    await reply(a.client, "result");
    await a.client.write(step(1, fakeHidden(1, 1, H), { push: 1, startFromPosition: 1 }));
    assert.deepEqual(await reply(b.client, "link_lost"), { type: "link_lost", link: number });
    await b.client.write(step(1, fakeHidden(1, 1, H)));
    assert.deepEqual((await reply(b.client, "result")).stepId, 1);
    // relink; a step that reorders the cache is answered by its server, not pushed on
    await link(a, b);
    await a.client.write({
      ...step(2, fakeHidden(1, 1, H), { push: 1, startFromPosition: 2 }),
      hypoIds: [0],
    });
    const own = await reply(a.client, "result");
    assert.deepEqual([own.stepId, own.pushed, own.trail], [2, undefined, undefined]);
    assert.equal(b.session.position, 1);
  } finally {
    await r.close();
  }
});

Deno.test("links: a reply whose trail exceeds the frame cap carries the output alone (the client then reruns)", async () => {
  // 12 tokens of hidden 8: 384 bytes an output; three of them do not fit a 1024-byte frame
  const r = await route(3, {}, { limits: wireLimits(1024) });
  const [a, b, c] = r.hops;
  try {
    await link(a, b);
    await link(b, c);
    const x = fakeHidden(1, 12, H, 3);
    const [want] = await reference(3, [x]);
    await a.client.write(step(0, x, { push: 2 }));
    const got = await reply(c.client, "result");
    assert.deepEqual([got.stepId, got.pushed, got.trail, got.hidden.shape], [0, true, undefined, [1, 12, H]]);
    assert.deepEqual(got.hidden.data, want[2].data);
  } finally {
    await r.close();
  }
});
