import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { FakeSwarm } from "../../testing/mod.ts";
import { SessionState } from "./session_state.ts";
import { SpanRouter } from "./span_routing.ts";

async function setup() {
  const swarm = new FakeSwarm({ numBlocks: 9, hiddenSize: 8 });
  await swarm.addServer("A", 0, 3);
  await swarm.addServer("B", 3, 6);
  await swarm.addServer("C", 6, 9);
  const s = new SessionState({
    model: swarm.model,
    start: 0,
    end: 9,
    maxLength: 16,
    table: swarm,
    transport: swarm,
    sessionId: "S",
  });
  return { swarm, s, router: new SpanRouter(s) };
}

Deno.test("SpanRouter.reroute: a range becomes the spans of its route; a range nobody else covers is MISSING_BLOCKS", async () => {
  const { s, router } = await setup();
  router.reroute(0);
  assert.deepEqual(s.chain.map((x) => `${x.server?.peerId}:${x.start}-${x.end}`), [
    "A:0-3",
    "B:3-6",
    "C:6-9",
  ]);
  assert.deepEqual(
    s.chain.map((x) => x.history),
    [[], null, null],
    "the first piece keeps the range's history",
  );
  assert.ok(s.routed);
  assert.equal(s.stats.replacements, 0);
  s.chain[1].server = undefined;
  s.bans.ban("B");
  assert.throws(() => router.reroute(1), (e) => e instanceof SwarmError && e.code === "MISSING_BLOCKS");
});

Deno.test("SpanRouter.openRemote: opens on the span's server; a session closed meanwhile closes it again", async () => {
  const { swarm, s, router } = await setup();
  router.reroute(0);
  await router.openRemote(s.chain[0]);
  assert.ok(s.chain[0].remote);
  assert.equal(swarm.servers_.get("A")!.backend.info().openSessions, 1);
  s.closed = true;
  await assert.rejects(
    router.openRemote(s.chain[1]),
    (e) => e instanceof SwarmError && e.code === "SESSION_CLOSED",
  );
  assert.equal(s.chain[1].remote, undefined);
  assert.equal(swarm.servers_.get("B")!.backend.info().openSessions, 0, "not leaked");
});

Deno.test("SpanRouter.openAhead: routes and opens every span at once; a failed open is left to the step", async () => {
  const { swarm, s, router } = await setup();
  swarm.kill("B");
  let settled = 0;
  const { promise, resolve } = Promise.withResolvers<void>();
  router.openAhead(() => ++settled === 3 && resolve());
  assert.equal(s.chain.length, 3);
  assert.ok(s.chain.every((x) => x.opening));
  await promise;
  assert.deepEqual(s.chain.map((x) => !!x.remote), [true, false, true]);
  assert.ok(s.chain.every((x) => x.opening === undefined));
});
