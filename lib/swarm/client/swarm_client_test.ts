import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { FakeBackend, FakeHead, fakeHidden, FakeSwarm, FakeTokenizer } from "../../testing/mod.ts";
import { generateText } from "./generate_text.ts";
import { SwarmClient } from "./swarm_client.ts";

const H = 16;

async function setup() {
  const swarm = new FakeSwarm({ numBlocks: 9, hiddenSize: H });
  await swarm.addServer("A", 0, 4);
  await swarm.addServer("B", 4, 9);
  await swarm.addServer("B2", 4, 9, { inferenceRps: 1 });
  const head = new FakeHead(H), tokenizer = new FakeTokenizer();
  const client = new SwarmClient({ model: swarm.model, table: swarm, transport: swarm, head, tokenizer });
  return { swarm, head, tokenizer, client };
}

async function localTokens(head: FakeHead, tokenizer: FakeTokenizer, prompt: string | number[], n: number) {
  const b = new FakeBackend({ hiddenSize: H, numBlocks: 9 });
  await b.start();
  const session = await b.openSession({ start: 0, end: 9, maxLength: 256, batch: 1 });
  const g = generateText({ head, tokenizer, session }, prompt, { maxNewTokens: n, eosTokenIds: [] });
  return (await g.complete()).tokenIds;
}

/** One generation on a leased session, closed after it: its tokens and the lease. */
async function leasedGeneration(
  { head, tokenizer, client }: Pick<Awaited<ReturnType<typeof setup>>, "head" | "tokenizer" | "client">,
  prompt: string,
  n: number,
) {
  const lease = client.leaseSession({ maxLength: 32 });
  const g = generateText({ head, tokenizer, session: lease }, prompt, { maxNewTokens: n, eosTokenIds: [] });
  const r = await g.complete();
  await lease.close();
  return { tokens: [...r.tokenIds], lease };
}

Deno.test("SwarmClient.generate matches the local run and closes its session", async () => {
  const { swarm, head, tokenizer, client } = await setup();
  assert.equal(client.numBlocks, 9, "from the head's info");
  assert.deepEqual(client.plan().map((s) => s.server.peerId), ["A", "B"]);
  const g = client.generate("hello", { maxNewTokens: 8, eosTokenIds: [] });
  const toks: number[] = [];
  for await (const t of g) toks.push(t.tokenId);
  assert.deepEqual(toks, [...await localTokens(head, tokenizer, "hello", 8)]);
  assert.equal(g.result!.tokenIds.length, 8);
  for (const s of swarm.servers_.values()) {
    assert.equal(s.backend.info().openSessions, 0, `${s.peerId} freed`);
  }
  // an early break also closes the session
  for await (const _ of client.generate("hello", { maxNewTokens: 8 })) break;
  for (const s of swarm.servers_.values()) assert.equal(s.backend.info().openSessions, 0);
  await client.stop();
  assert.throws(
    () => client.openSession({ maxLength: 8 }),
    (e) => e instanceof SwarmError && e.code === "CLIENT_STOPPED",
  );
});

Deno.test("leased sessions: the next generation reuses the last one's remote sessions, output as if fresh", async () => {
  const { swarm, head, tokenizer, client } = await setup();
  const gen = (prompt: string, n: number) => leasedGeneration({ head, tokenizer, client }, prompt, n);
  const a = await gen("hello", 6);
  const opens = swarm.opens;
  const b = await gen("other prompt", 5);
  assert.equal(b.lease.reused, true);
  assert.equal(swarm.opens, opens, "no remote session opened for the second generation");
  assert.deepEqual(a.tokens, await localTokens(head, tokenizer, "hello", 6));
  assert.deepEqual(b.tokens, await localTokens(head, tokenizer, "other prompt", 5));
  // a server of the idle session's route banned since: not reused
  client.bans.ban(b.lease.session.route[0].server.peerId);
  const c = client.leaseSession({ maxLength: 32 });
  assert.equal(c.reused, false);
  assert.equal(b.lease.session.closed, true);
  await c.close();
  // a server of its route gone (its connection known closed): not reused either
  const e = client.leaseSession({ maxLength: 32 });
  await generateText({ head, tokenizer, session: e }, "again", { maxNewTokens: 2, eosTokenIds: [] })
    .complete();
  await e.close();
  swarm.kill(e.session.route.at(-1)!.server.peerId);
  const f = client.leaseSession({ maxLength: 32 });
  assert.equal(f.reused, false);
  assert.equal(e.session.closed, true);
  await f.close();
  // longer than the idle session holds: a new one
  const d = client.leaseSession({ maxLength: 64 });
  assert.equal(d.reused, false);
  await d.close();
  assert.deepEqual(client.poolStats, { opened: 4, reused: 2, retired: 2 });
  await client.stop();
  for (const s of swarm.servers_.values()) {
    assert.equal(s.backend.info().openSessions, 0, `${s.peerId} freed`);
  }
  assert.throws(
    () => client.leaseSession({ maxLength: 8 }),
    (e) => e instanceof SwarmError && e.code === "CLIENT_STOPPED",
  );
});

Deno.test("leased sessions: a server that ended the idle session is reopened, not banned; a real failure still is", async () => {
  const { swarm, head, tokenizer, client } = await setup();
  const gen = (prompt: string, n: number) => leasedGeneration({ head, tokenizer, client }, prompt, n);
  const a = await gen("hello", 4);
  const [first, last] = [a.lease.session.route[0].server.peerId, a.lease.session.route.at(-1)!.server.peerId];
  // both servers end the session while it waits in the pool, unseen by the client
  swarm.endSessions(first, "frame");
  swarm.endSessions(last, "closed");
  const opens = swarm.opens;
  const b = await gen("other prompt", 5);
  assert.equal(b.lease.reused, true);
  assert.deepEqual(b.tokens, await localTokens(head, tokenizer, "other prompt", 5));
  assert.equal(swarm.opens, opens + 2, "a new remote session on each of the two servers");
  assert.deepEqual(b.lease.session.route.map((r) => r.server.peerId), [first, last], "on the same servers");
  assert.equal(client.bans.isBanned(first), false);
  assert.equal(client.bans.isBanned(last), false);
  // a server whose connection fails again after the reopen is banned as before
  const c = await gen("x", 2);
  swarm.endSessions(last);
  swarm.onStep = (e) => {
    if (e.peerId === last) swarm.kill(last);
  };
  const d = await gen("third", 3);
  assert.equal(c.lease.session, d.lease.session);
  assert.deepEqual(d.tokens, await localTokens(head, tokenizer, "third", 3));
  assert.equal(client.bans.isBanned(last), true);
  assert.notEqual(d.lease.session.route.at(-1)!.server.peerId, last, "re-routed");
  await client.stop();
});

Deno.test("SwarmClient.chat continues one session across turns", async () => {
  const { swarm, head, tokenizer, client } = await setup();
  const chat = client.chat({ maxLength: 64 });
  const r1 = await chat.send("hi", { maxNewTokens: 3, eosTokenIds: [] }).complete();
  const opensAfterTurn1 = swarm.opens;
  const r2 = await chat.send(" you", { maxNewTokens: 3, eosTokenIds: [] }).complete();
  assert.equal(swarm.opens, opensAfterTurn1, "no new remote sessions for turn 2");
  assert.equal(chat.session.position, 2 + 3 + 4 + 2);
  const expected = await localTokens(head, tokenizer, [
    ...tokenizer.encode("hi"),
    ...r1.tokenIds,
    ...tokenizer.encode(" you"),
  ], 3);
  assert.deepEqual(r2.tokenIds, expected);
  await client.stop();
  assert.equal(chat.session.closed, true, "stop() closes open sessions");
});

Deno.test("SwarmClient pings servers and routing follows the measured RTTs", async () => {
  const { swarm, client } = await setup();
  const rtts: Record<string, number> = { A: 5, B: 400, B2: 2 };
  swarm.ping = (s) => Promise.resolve(rtts[s.peerId]);
  await client.start();
  assert.equal(client.pings.rtt("B"), 400);
  // B2 is slow to compute (1 rps → 5 s for 5 blocks) so B still wins; make B2 fast and it wins
  swarm.servers_.get("B2")!.record = { ...swarm.servers_.get("B2")!.record, inferenceRps: 1000 };
  assert.deepEqual(client.plan().map((s) => s.server.peerId), ["A", "B2"]);
  swarm.servers_.get("A")!.record = { ...swarm.servers_.get("A")!.record, state: "offline" };
  assert.throws(
    () => client.plan(),
    (e) => e instanceof SwarmError && e.code === "MISSING_BLOCKS" && /0\.\.3/.test(e.message),
  );
});

Deno.test("SwarmClient.forward runs every block; a failed server is banned and the rest re-routed", async () => {
  const { swarm, client } = await setup();
  const ref = await swarm.reference();
  const x = fakeHidden(1, 6, H, 4);
  const expected = await ref.forward(0, 9, x);
  assert.deepEqual((await client.forward(x)).data, expected.data);
  // B is the only-by-weight choice now and dies; B2 takes over
  swarm.servers_.get("B")!.record = { ...swarm.servers_.get("B")!.record, throughput: 1e9 };
  swarm.kill("B");
  assert.deepEqual((await client.forward(x)).data, expected.data);
  assert.equal(client.bans.isBanned("B"), true);
  swarm.kill("B2");
  await assert.rejects(
    () => client.forward(x),
    (e) => e instanceof SwarmError && e.code === "MISSING_BLOCKS",
  );
  await ref.stop();
});
