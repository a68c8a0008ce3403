import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { fakeHidden, FakeSwarm, type StepEvent } from "../../testing/mod.ts";
import { concatTokens, sliceTokens } from "./hidden_ops.ts";
import { relayStep } from "./relay_step.ts";
import { SessionState } from "./session_state.ts";
import { SpanRouter } from "./span_routing.ts";

async function setup() {
  const swarm = new FakeSwarm({ numBlocks: 4, hiddenSize: 8 });
  await swarm.addServer("A", 0, 2);
  await swarm.addServer("B", 2, 4);
  const s = new SessionState({
    model: swarm.model,
    start: 0,
    end: 4,
    maxLength: 16,
    table: swarm,
    transport: swarm,
  });
  const router = new SpanRouter(s);
  router.reroute(0);
  const steps: StepEvent[] = [];
  swarm.onStep = (e) => steps.push(e);
  return { swarm, s, router, steps };
}

Deno.test("relayStep: an open span gets the new positions; a new remote gets its history replayed from 0", async () => {
  const { s, router, steps } = await setup();
  const a = fakeHidden(1, 3, 8, 1), b = fakeHidden(1, 1, 8, 2);
  await router.openRemote(s.chain[0]);
  const first = await relayStep(s, router, s.chain[0], { last: a }, 0, 0);
  assert.equal(first.full, undefined);
  assert.deepEqual(s.chain[0].history, [a]);
  // the remote is lost: the next step replays [a, b] as one step from position 0
  s.chain[0].remote = undefined;
  const second = await relayStep(s, router, s.chain[0], { last: b }, 3, 1);
  assert.deepEqual(steps.map((e) => [e.peerId, e.tokens, e.startFromPosition]), [["A", 3, 0], ["A", 4, 0]]);
  assert.equal(second.full!.shape[1], 4);
  assert.deepEqual(second.last.data, sliceTokens(second.full!, 3, 4).data);
  assert.equal(s.stats.replayedTokens, 3);
  assert.deepEqual(s.chain[0].history, [a, b]);
});

Deno.test("relayStep: a span without history takes it from the replayed span before it", async () => {
  const { s, router, steps } = await setup();
  const full = fakeHidden(1, 4, 8, 5);
  s.chain[1].history = null;
  const r = await relayStep(s, router, s.chain[1], { last: sliceTokens(full, 3, 4), full }, 3, 0);
  assert.equal(r.full!.shape[1], 4);
  assert.deepEqual(steps.map((e) => [e.peerId, e.tokens]), [["B", 4]]);
  assert.deepEqual(concatTokens(s.chain[1].history!).data, full.data);
  s.chain[0].history = null;
  await assert.rejects(
    relayStep(s, router, s.chain[0], { last: fakeHidden(1, 1, 8, 1) }, 0, 1),
    (e) => e instanceof SwarmError && e.code === "INTERNAL",
  );
});

Deno.test("relayStep: a reply of the wrong shape is the server's failure (BAD_REPLY)", async () => {
  const { swarm, s, router } = await setup();
  swarm.servers_.get("A")!.garble = true;
  await assert.rejects(
    relayStep(s, router, s.chain[0], { last: fakeHidden(1, 2, 8, 1) }, 0, 0),
    (e) => e instanceof SwarmError && e.code === "BAD_REPLY",
  );
  assert.deepEqual(s.chain[0].history, [], "nothing recorded");
});

Deno.test("relayStep: a reply with NaN or infinity is the server's failure (BAD_REPLY)", async () => {
  const { swarm, s, router } = await setup();
  swarm.servers_.get("A")!.nan = true;
  await assert.rejects(
    relayStep(s, router, s.chain[0], { last: fakeHidden(1, 2, 8, 1) }, 0, 0),
    (e) =>
      e instanceof SwarmError && e.code === "BAD_REPLY" &&
      /non-finite value \(NaN\) at index 15/.test(e.message),
  );
  assert.deepEqual(s.chain[0].history, [], "nothing recorded");
});

Deno.test("relayStep: the caller's abort ends a wait for a session the background linking holds", async () => {
  const { s, router } = await setup();
  await router.openRemote(s.chain[0]);
  const release = await s.chain[0].lock.acquire(); // a link_to exchange in flight
  const ac = new AbortController();
  const step = relayStep(s, router, s.chain[0], { last: fakeHidden(1, 1, 8, 1) }, 0, 0, {
    signal: ac.signal,
  });
  const reason = new Error("client went away");
  ac.abort(reason);
  await assert.rejects(step, (e) => e === reason);
  release();
  await s.chain[0].lock.run(() => Promise.resolve()); // the step's given-up place does not block the next
  assert.equal(s.chain[0].lock.locked, false);
});
