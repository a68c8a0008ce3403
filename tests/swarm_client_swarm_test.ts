/**
 * Multi-process tests of the swarm client: span servers run as separate processes on 127.0.0.1
 * (libp2p + the swarm's real protocol handlers over the runtime's FakeBackend); the client
 * connects over libp2p, pulls the table, routes, generates, and survives SIGKILLed servers.
 */
import assert from "node:assert/strict";
import { SwarmError } from "../lib/errors.ts";
import { FakeBackend, FakeHead, fakeHidden, FakeTokenizer } from "../lib/testing/mod.ts";
import { type ConnectedSwarmClient, connectSwarm } from "../lib/swarm/client/connect_swarm.ts";
import { generateText, type StepSession } from "../lib/swarm/client/generate_text.ts";
import type { SwarmInferenceSession } from "../lib/swarm/client/swarm_inference_session.ts";
import { type SpawnedFixture, spawnFixtureServer } from "./helpers/swarm_client_fixture.ts";
import { waitFor } from "./helpers/wait_for.ts";

const MODEL = "fake/model";
const NB = 9, H = 16;
const head = new FakeHead(H), tokenizer = new FakeTokenizer();
const PROMPT = "the swarm says";
const opts = { maxNewTokens: 12, eosTokenIds: [] as number[] };

async function localReference(prompt = PROMPT, o = opts): Promise<number[]> {
  const b = new FakeBackend({ modelId: MODEL, hiddenSize: H, numBlocks: NB });
  await b.start();
  const session = await b.openSession({ start: 0, end: NB, maxLength: 128, batch: 1 });
  const r = await generateText({ head, tokenizer, session }, prompt, o).complete();
  await b.stop();
  return [...r.tokenIds];
}

class Swarm {
  servers: SpawnedFixture[] = [];
  /** `delayMs`: every server's pretend compute time per step. */
  constructor(readonly delayMs = 0) {}
  async add(start: number, end: number, inferenceRps = 1000): Promise<SpawnedFixture> {
    const s = await spawnFixtureServer({
      model: MODEL,
      start,
      end,
      numBlocks: NB,
      hiddenSize: H,
      inferenceRps,
      delayMs: this.delayMs,
    });
    this.servers.push(s);
    const all = this.servers.map((x) => x.signed);
    await Promise.all(this.servers.map((x) => x.addRecords(all).catch(() => {})));
    return s;
  }
  /** A client of the swarm; it pushes server to server unless `push` says otherwise. */
  async connect(push: boolean | "auto" = true, stepTimeoutMs = 10_000): Promise<ConnectedSwarmClient> {
    const first = this.servers[0];
    const client = await connectSwarm({
      model: MODEL,
      initialPeers: [
        first.addrs[0].includes("/p2p/") ? first.addrs[0] : `${first.addrs[0]}/p2p/${first.peerId}`,
      ],
      head,
      tokenizer,
      numBlocks: NB,
      tableRefreshMs: 0,
      retryBackoff: { initialMs: 20, maxMs: 200 },
      maxRetries: 4,
      stepTimeoutMs,
      push,
    });
    await waitFor(async () => {
      await client.swarmTable.refresh();
      return client.swarmTable.servers(MODEL).length >= this.servers.length;
    }, { what: "the full table", timeoutMs: 20_000 });
    return client;
  }
  /** Two servers for each of `spans` (a spare for every span). */
  async addPairs(spans: Array<[number, number]>): Promise<void> {
    for (const [s, e] of spans) {
      await this.add(s, e);
      await this.add(s, e);
    }
  }
  /** The server of a random span of `session`'s route (`rnd` in [0, 1)). */
  pick(session: SwarmInferenceSession, rnd: () => number): SpawnedFixture {
    const route = session.route;
    const peer = route[Math.floor(rnd() * route.length)].server.peerId;
    return this.servers.find((x) => x.peerId === peer)!;
  }
  /** After `victim` was killed: a fresh server on its span, once `client`'s table has it. */
  async replace(victim: SpawnedFixture, client: ConnectedSwarmClient): Promise<void> {
    const rec = JSON.parse(victim.signed.payload) as { start: number; end: number };
    this.servers = this.servers.filter((x) => x !== victim);
    const fresh = await this.add(rec.start, rec.end);
    await waitFor(async () => {
      await client.swarmTable.refresh();
      return client.swarmTable.table.get(fresh.peerId);
    }, { what: "the new server in the client's table" });
  }
  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.kill()));
  }
}

/** A seeded generator of numbers in [0, 1) (Lehmer), so that failing trials can be rerun. */
function seeded(seed: number): () => number {
  return () => (seed = (seed * 48271) % 2147483647) / 2147483647;
}

/**
 * Runs `fn` on a swarm of two servers for each third of the model (every step `delayMs` long),
 * with a generator seeded by `seed` and the single-process tokens; the servers go at the end.
 */
async function withSparedThirds(
  delayMs: number,
  seed: number,
  fn: (swarm: Swarm, rnd: () => number, expected: number[]) => Promise<void>,
): Promise<void> {
  const expected = await localReference();
  const swarm = new Swarm(delayMs);
  try {
    await swarm.addPairs([[0, 3], [3, 6], [6, 9]]);
    await fn(swarm, seeded(seed), expected);
  } finally {
    await swarm.stop();
  }
}

/** Runs a generation on a fresh session of `client`, calling `hook(stepIndex)` after every session step. */
async function generateWithHook(
  client: ConnectedSwarmClient,
  hook: (step: number, session: SwarmInferenceSession) => Promise<void> | void,
  prompt = PROMPT,
  o: Parameters<typeof generateText>[2] = opts,
) {
  const session = client.openSession({ maxLength: 64 });
  let step = 0;
  const proxy: StepSession = {
    get position() {
      return session.position;
    },
    maxLength: session.maxLength,
    async step(h, so) {
      const y = await session.step(h, so);
      await hook(++step, session);
      return y;
    },
  };
  try {
    const r = await client.generateWith(proxy, prompt, o).complete();
    return { tokens: [...r.tokenIds], session };
  } finally {
    await session.close();
  }
}

Deno.test({
  name:
    "3-process swarm: greedy generation equals the single-process run; prefill failure; two-piece replacement",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const expected = await localReference();
    const swarm = new Swarm();
    try {
      await swarm.add(0, 3);
      const b = await swarm.add(3, 6);
      await swarm.add(6, 9);
      const client = await swarm.connect();
      try {
        for (const s of swarm.servers) {
          const rtt = client.pings.rtt(s.peerId);
          assert.ok(rtt !== undefined && Number.isFinite(rtt), `ping to ${s.peerId}: ${rtt}`);
        }
        // the route is linked in the background while the first step runs; once it is (waited for
        // here, after the first step), every step's output goes server to server: the client
        // collects the second and third spans' results without sending them anything
        const plain = await generateWithHook(client, async (step, session) => {
          if (step === 1) await waitFor(() => session.linkedHops === 2, { what: "the route's two links" });
        });
        assert.deepEqual(plain.tokens, expected);
        assert.equal(plain.session.route.length, 3);
        assert.equal(plain.session.stats.failures, 0);
        assert.equal(plain.session.stats.pushed, 2 * (plain.session.stats.steps - 1));
        // a client that relays every hop generates the same
        const relay = await swarm.connect(false);
        try {
          const relayed = await generateWithHook(relay, () => {});
          assert.deepEqual(relayed.tokens, expected);
          assert.equal(relayed.session.stats.pushed, 0);
        } finally {
          await relay.stop();
        }

        // failure during prefill (the prompt is prefilled in chunks of 4; B dies after the first chunk)
        await swarm.add(3, 6, 10);
        await waitFor(
          async () => (await client.swarmTable.refresh(), client.swarmTable.servers(MODEL).length === 4),
        );
        const chunked = { ...opts, prefillChunkTokens: 4 };
        const expectedChunked = await localReference(PROMPT, chunked);
        const r = await generateWithHook(
          client,
          async (step) => {
            if (step === 1) await b.kill();
          },
          PROMPT,
          chunked,
        );
        assert.deepEqual(r.tokens, expectedChunked);
        assert.equal(r.session.stats.failures, 1);
        assert.ok(r.session.stats.replayedTokens >= 4);

        // the replacement covers the failed span in two pieces
        const b2 = swarm.servers[3];
        await swarm.add(3, 5, 5);
        await swarm.add(5, 6, 5);
        await waitFor(
          async () => (await client.swarmTable.refresh(), client.swarmTable.servers(MODEL).length === 6),
        );
        const r2 = await generateWithHook(client, async (step) => {
          if (step === 4) await b2.kill();
        });
        assert.deepEqual(r2.tokens, expected);
        assert.deepEqual(r2.session.route.map((s) => `${s.start}:${s.end}`), ["0:3", "3:5", "5:6", "6:9"]);
      } finally {
        await client.stop();
      }
    } finally {
      await swarm.stop();
    }
  },
});

Deno.test({
  name:
    "20 clients on one host connect and generate at once: every server takes them (no refused connection, no ban), identical output",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const expected = await localReference();
    const swarm = new Swarm();
    try {
      await swarm.add(0, 3);
      await swarm.add(3, 6);
      await swarm.add(6, 9);
      const initialPeers = [swarm.servers[0].addrs[0]];
      // as separate `plumise generate` runs would: default retries, each its own libp2p node,
      // each connecting to all three servers within the same second
      const runs = await Promise.all(Array.from({ length: 20 }, async () => {
        const client = await connectSwarm({
          model: MODEL,
          initialPeers,
          head,
          tokenizer,
          numBlocks: NB,
          tableRefreshMs: 0,
        });
        try {
          const r = await client.generate(PROMPT, opts).complete();
          const banned = swarm.servers.filter((x) => client.bans.isSuspect(x.peerId)).map((x) => x.peerId);
          return { tokens: [...r.tokenIds], banned };
        } finally {
          await client.stop();
        }
      }));
      for (const [i, r] of runs.entries()) {
        assert.deepEqual(r.tokens, expected, `client ${i}`);
        assert.deepEqual(r.banned, [], `client ${i} found a server failing`);
      }
    } finally {
      await swarm.stop();
    }
  },
});

Deno.test({
  name: "no replacement: a clear error after bounded retries, no hang",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const swarm = new Swarm();
    try {
      await swarm.add(0, 5);
      const victim = await swarm.add(5, 9);
      const client = await swarm.connect();
      try {
        const t0 = performance.now();
        await assert.rejects(
          () =>
            generateWithHook(client, async (step) => {
              if (step === 3) await victim.kill();
            }),
          (e) =>
            e instanceof SwarmError && e.code === "SESSION_FAILED" && /blocks \[5, 9\)/.test(e.message) &&
            e.details.lastCode === "MISSING_BLOCKS" && /5\.\.8/.test(e.message),
        );
        assert.ok(performance.now() - t0 < 30_000, "bounded");
      } finally {
        await client.stop();
      }
    } finally {
      await swarm.stop();
    }
  },
});

Deno.test({
  name:
    "failover: 20 trials pushing and 20 relaying, a random server SIGKILLed at a random step ≥ 2, spares present: identical output",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withSparedThirds(0, 20251125, async (swarm, rnd, expected) => {
      // 20 trials with a client that pushes server to server, 20 with one that relays every hop
      for (const push of [true, false]) {
        const client = await swarm.connect(push);
        try {
          let ok = 0;
          for (let trial = 0; trial < 20; trial++) {
            const killAt = 2 + Math.floor(rnd() * 10);
            let victim: SpawnedFixture | undefined;
            const r = await generateWithHook(client, async (step, session) => {
              if (step !== killAt) return;
              victim = swarm.pick(session, rnd);
              await victim.kill();
            });
            const what = `${push ? "push" : "relay"} trial ${trial} (kill at step ${killAt})`;
            assert.ok(victim, `${what}: the kill happened`);
            assert.deepEqual(r.tokens, expected, what);
            assert.ok(r.session.stats.failures >= 1);
            assert.equal(r.session.stats.pushed > 0, push, `${what}: pushed ${r.session.stats.pushed}`);
            ok++;
            await swarm.replace(victim!, client); // two live servers for the victim's span again
          }
          assert.equal(ok, 20);
        } finally {
          await client.stop();
        }
      }
    }),
});

Deno.test({
  name:
    "failover inside a step: 10 trials, a random server of the route SIGKILLed while a pushed decode step runs: identical output",
  sanitizeOps: false,
  sanitizeResources: false,
  // 15 ms per span step: a kill at 0–45 ms after a step lands on the first, second or third hop
  // of the next one (computing, pushing, or sending its result)
  fn: () =>
    withSparedThirds(15, 41956, async (swarm, rnd, expected) => {
      const client = await swarm.connect();
      try {
        for (let trial = 0; trial < 10; trial++) {
          const killAt = 3 + Math.floor(rnd() * 7);
          let victim: SpawnedFixture | undefined;
          let killed: Promise<void> | undefined;
          const r = await generateWithHook(client, (step, session) => {
            if (step !== killAt) return;
            victim = swarm.pick(session, rnd);
            // not awaited: the next step is already under way when the kill lands
            const at = rnd() * 45;
            killed = new Promise((done) => setTimeout(() => victim!.kill().then(done), at));
          });
          await killed;
          assert.ok(victim, `trial ${trial}: the kill happened`);
          assert.deepEqual(r.tokens, expected, `trial ${trial} (kill after step ${killAt})`);
          assert.ok(r.session.stats.failures >= 1, `trial ${trial}: the session saw the failure`);
          assert.ok(r.session.stats.pushed > 0, `trial ${trial}: steps were pushed between servers`);
          await swarm.replace(victim!, client);
        }
      } finally {
        await client.stop();
      }
    }),
});

/** The whole model in one process, stepped through `xs`: the reference outputs. */
async function referenceSteps(xs: ReturnType<typeof fakeHidden>[]) {
  const b = new FakeBackend({ modelId: MODEL, hiddenSize: H, numBlocks: NB });
  await b.start();
  const s = await b.openSession({ start: 0, end: NB, maxLength: 64, batch: 1 });
  const ys = [];
  for (const x of xs) ys.push(await s.step(x));
  await b.stop();
  return ys;
}

Deno.test({
  name:
    "a cancelled step: pushing, every session stays usable; relaying, the cut one is replayed; neither bans a server. A hung server is found span by span, the others not banned",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const xs = [fakeHidden(1, 3, H, 1), fakeHidden(1, 1, H, 2), fakeHidden(1, 1, H, 3)];
    const want = await referenceSteps(xs);
    const swarm = new Swarm(40); // 40 ms a span step: a push takes ~120 ms
    try {
      await swarm.addPairs([[0, 3], [3, 6], [6, 9]]);
      const client = await swarm.connect(true, 1_000);
      try {
        const session = client.openSession({ maxLength: 64 });
        assert.deepEqual((await session.step(xs[0])).data, want[0].data);
        // cancelled while the push is on its second or third server
        const stop = new AbortController();
        setTimeout(() => stop.abort(new Error("the caller gave up")), 60);
        await assert.rejects(session.step(xs[1], { signal: stop.signal }), /the caller gave up/);
        assert.deepEqual((await session.step(xs[1])).data, want[1].data);
        assert.equal(session.stats.failures, 0);
        assert.ok(session.stats.pushed >= 2, `pushed ${session.stats.pushed}`);
        const route = session.route.map((r) => r.server.peerId);
        assert.ok(route.every((p) => !client.bans.isBanned(p)), "no server banned");

        // the middle server hangs (SIGSTOP: no reset, no reply): the push runs out of time (3 × 1 s),
        // the step goes span by span, the middle one times out there and only it is banned
        const hung = swarm.servers.find((x) => x.peerId === route[1])!;
        hung.child.kill("SIGSTOP");
        assert.deepEqual((await session.step(xs[2])).data, want[2].data);
        assert.ok(client.bans.isBanned(route[1]), "the hung server is banned");
        assert.ok(!client.bans.isBanned(route[0]) && !client.bans.isBanned(route[2]), "the others are not");
        assert.equal(session.stats.failures, 1);
        await session.close();
      } finally {
        await client.stop();
      }
      // relaying, a cancelled step ends the connection it was waiting on: that session is let go
      // without blaming its server, and the next step replays to a new one on the same server
      const relay = await swarm.connect(false, 1_000);
      try {
        const session = relay.openSession({ maxLength: 64 });
        await session.step(xs[0]);
        const stop = new AbortController();
        setTimeout(() => stop.abort(new Error("the caller gave up")), 60);
        await assert.rejects(session.step(xs[1], { signal: stop.signal }), /the caller gave up/);
        assert.deepEqual((await session.step(xs[1])).data, want[1].data);
        assert.equal(session.stats.failures, 0);
        assert.ok(session.stats.replayedTokens > 0, "a span was replayed");
        assert.ok(session.route.every((r) => !relay.bans.isBanned(r.server.peerId)), "no server banned");
        await session.close();
      } finally {
        await relay.stop();
      }
    } finally {
      await swarm.stop();
    }
  },
});
