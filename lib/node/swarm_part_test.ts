import assert from "node:assert/strict";
import { resolveConfig } from "../config/resolve_config.ts";
import { FakeBackend } from "../testing/mod.ts";
import { Metrics } from "../util/metrics.ts";
import { memoryLogger, silentLogger } from "../util/logger.ts";
import { createSwarmPart, type SwarmPart } from "./swarm_part.ts";

const figures = { throughput: 10, inferenceRps: 100, forwardRps: 1000, networkRps: 500 };

async function part(
  dir: string,
  name: string,
  peers: string[],
  extra: Record<string, string> = {},
  movable?: { released: Array<[number, number]> },
) {
  const config = resolveConfig({
    env: {
      PLUMISE_OFFLINE: "true",
      MODEL_NAME: "fake/model",
      NUM_BLOCKS: "2",
      PETALS_HOST: "127.0.0.1",
      PETALS_PORT: "0",
      PETALS_IDENTITY_PATH: `${dir}/${name}.key`,
      PETALS_INITIAL_PEERS: peers.join(","),
      PLUMISE_DATA_DIR: dir,
      ...extra,
    },
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
  let runtime: FakeBackend | undefined;
  const p = await createSwarmPart({
    config,
    metrics: new Metrics(),
    logger: silentLogger,
    runtime: () => runtime!,
    figures: () => figures,
    announcePeriodMs: 500,
    ...(movable
      ? {
        rebalance: { delayMs: () => 50, settleMs: 300 },
        move: async (span: { start: number; end: number }) => {
          const old = runtime!;
          runtime = new FakeBackend({
            modelId: "fake/model",
            numBlocks: 6,
            start: span.start,
            end: span.end,
          });
          await runtime.start();
          return async () => {
            const i = old.info();
            movable.released.push([i.start, i.end]);
            await old.stop();
          };
        },
      }
      : {}),
  });
  return {
    p,
    async run() {
      const signal = new AbortController().signal;
      await p.start({ signal });
      const span = await p.chooseSpan(6, { signal });
      await p.announce("joining", span, { signal });
      runtime = new FakeBackend({ modelId: "fake/model", numBlocks: 6, start: span.start, end: span.end });
      await runtime.start();
      await p.serve(figures.throughput);
      return span;
    },
  };
}

Deno.test({
  name: "swarm part: simultaneous joiners end on disjoint spans; coverage; pinned span; identity persists",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const parts: SwarmPart[] = [];
    try {
      const a = await part(dir, "a", []);
      parts.push(a.p);
      assert.deepEqual(await a.run(), { start: 0, end: 2 });
      const peers = a.p.status().addrs!.slice(0, 1);
      const b = await part(dir, "b", peers);
      const c = await part(dir, "c", peers);
      parts.push(b.p, c.p);
      const spans = await Promise.all([b.run(), c.run()]);
      const keys = spans.map((s) => `${s.start}:${s.end}`).sort();
      assert.deepEqual(keys, ["2:4", "4:6"]);
      const deadline = Date.now() + 10_000;
      while (!a.p.status().coverage?.complete && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(a.p.status().coverage, {
        totalBlocks: 6,
        coveredBlocks: 6,
        complete: true,
        servers: 3,
      });

      const d = await part(dir, "d", peers, {
        BLOCK_INDICES: "2:4",
        MAX_SESSIONS: "3",
        SESSION_IDLE_TIMEOUT: "45",
        FORWARD_MAX_CONCURRENT: "3",
        FORWARD_MAX_QUEUED: "5",
      });
      parts.push(d.p);
      assert.deepEqual(await d.run(), { start: 2, end: 4 }, "a pinned span is taken as given");
      assert.deepEqual(
        [d.p.server.sessionLimits.maxSessions, d.p.server.sessionLimits.idleMs],
        [3, 45_000],
        "the session limits come from the config",
      );
      assert.deepEqual(
        [d.p.server.forwardLimits.maxConcurrent, d.p.server.forwardLimits.maxQueued],
        [3, 5],
        "the forward limits come from the config",
      );
      assert.deepEqual([a.p.server.forwardLimits.maxConcurrent, a.p.server.forwardLimits.maxQueued], [2, 16]);
      assert.deepEqual([a.p.server.sessionLimits.maxSessions, a.p.server.sessionLimits.idleMs], [
        64,
        300_000,
      ]);
      // reachability for /health: on loopback nobody sees an internet address, so nobody can say
      const reach = a.p.status().reachability!;
      assert.equal(reach.status, "unknown");
      assert.match(reach.reason, /internet/);
      assert.deepEqual(
        [reach.relays, reach.relaying],
        [[], false],
        "RELAY_SERVICE auto relays only when public",
      );
      const firstId = a.p.status().peerId;
      await a.p.drain(100);
      await a.p.stop();
      const again = await part(dir, "a", []);
      await again.p.start({ signal: new AbortController().signal });
      parts.push(again.p);
      assert.equal(again.p.status().peerId, firstId, "the peer id survives a restart");
    } finally {
      for (const p of parts) await p.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm part: rebalancing moves an unpinned server to the uncovered blocks and unloads the old ones",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const parts: SwarmPart[] = [];
    try {
      const moved = { released: [] as Array<[number, number]> };
      const c = await part(dir, "c", [], {}, moved);
      parts.push(c.p);
      assert.deepEqual(await c.run(), { start: 0, end: 2 });
      const peers = c.p.status().addrs!.slice(0, 1);
      // a pinned twin on 0:2 and a pinned server on 2:4 leave 4:6 uncovered: c must move there
      const a = await part(dir, "a", peers, { BLOCK_INDICES: "0:2" });
      const b = await part(dir, "b", peers, { BLOCK_INDICES: "2:4" });
      parts.push(a.p, b.p);
      await a.run();
      await b.run();
      const deadline = Date.now() + 20_000;
      while (c.p.status().span?.start !== 4 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.deepEqual(c.p.status().span, { start: 4, end: 6 }, "c moved to the uncovered blocks");
      while (!a.p.status().coverage?.complete && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(a.p.status().coverage?.complete, true, "every block is covered after the move");
      assert.deepEqual(moved.released, [[0, 2]], "the old blocks were unloaded once");
      assert.deepEqual(a.p.status().span, { start: 0, end: 2 }, "pinned servers never move");
      assert.deepEqual(b.p.status().span, { start: 2, end: 4 });
    } finally {
      for (const p of parts) await p.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "swarm part: NUM_BLOCKS past the model's blocks serves them all, with a warning",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const { logger, records } = memoryLogger();
    const config = resolveConfig({
      env: {
        PLUMISE_OFFLINE: "true",
        MODEL_NAME: "fake/model",
        NUM_BLOCKS: "99",
        PETALS_HOST: "127.0.0.1",
        PETALS_PORT: "0",
        PETALS_IDENTITY_PATH: `${dir}/a.key`,
        PLUMISE_DATA_DIR: dir,
      },
      system: { availableMemoryBytes: 8 * 2 ** 30 },
    }).config;
    const p = await createSwarmPart({
      config,
      metrics: new Metrics(),
      logger,
      runtime: () => new FakeBackend({ modelId: "fake/model", numBlocks: 6, start: 0, end: 6 }),
      figures: () => figures,
    });
    try {
      const signal = new AbortController().signal;
      await p.start({ signal });
      const span = await p.chooseSpan(6, { signal });
      assert.deepEqual([span.start, span.end], [0, 6]);
      // before: 0:6 without a word
      const w = records.find((r) =>
        r.level === "warn" && /NUM_BLOCKS is more than the model has/.test(r.msg)
      );
      assert.deepEqual([w?.numBlocks, w?.modelBlocks], [99, 6]);
    } finally {
      await p.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
