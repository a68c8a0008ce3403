/**
 * A qwen3-32b-shaped swarm at test scale: a tiny Qwen3 checkpoint with 64 blocks served by 16
 * servers (libp2p nodes with the real protocol handlers, in this process) whose spans come from
 * block selection as each joins. The spans cover every block, the table shows it, the client routes
 * through the 64 blocks (also around a server that went away), and greedy and seeded generation
 * equal the single process. All 16 servers run their blocks on one shared onnxruntime runtime (a
 * span view each), so the test costs one model load.
 */
import assert from "node:assert/strict";
import { RuntimeError } from "../lib/errors.ts";
import { createBlockRuntime, createClientHead, loadTokenizer } from "../lib/runtime/mod.ts";
import type {
  BlockRuntime,
  HiddenStates,
  InferenceSession,
  OpenSessionOptions,
  RuntimeInfo,
} from "../lib/runtime/types.ts";
import { chooseBestBlocks, computeCoverage, type SelectionSpan } from "../lib/swarm/block_selection.ts";
import { connectSwarm } from "../lib/swarm/client/connect_swarm.ts";
import { generateText } from "../lib/swarm/client/generate_text.ts";
import { formatSwarmTableView, swarmTableView } from "../lib/swarm/swarm_table_view.ts";
import { makeQwen3Checkpoint } from "./helpers/checkpoint_fixture.ts";
import { type FixtureServer, startFixtureServer } from "./helpers/swarm_client_fixture.ts";
import { waitFor } from "./helpers/wait_for.ts";

const BLOCKS = 64;
/** Blocks each of the 16 servers asks for, in joining order (118 in all: about twice the model). */
const SIZES = [8, 5, 9, 4, 7, 10, 6, 8, 5, 9, 7, 4, 8, 6, 10, 12];
const PROMPT = "hello world";
const MAX_NEW = 6;

/** One server's span `[start, end)` of a runtime that holds every block. */
class SpanView implements BlockRuntime {
  constructor(readonly runtime: BlockRuntime, readonly first: number, readonly last: number) {}
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  info(): RuntimeInfo {
    return { ...this.runtime.info(), start: this.first, end: this.last };
  }
  #check(start: number, end: number): void {
    if (start < this.first || end > this.last) {
      throw new RuntimeError("BAD_SPAN", `[${start}, ${end}) is outside [${this.first}, ${this.last})`);
    }
  }
  openSession(options: OpenSessionOptions): Promise<InferenceSession> {
    this.#check(options.start, options.end);
    return this.runtime.openSession(options);
  }
  getSession(id: string): InferenceSession | undefined {
    return this.runtime.getSession(id);
  }
  forward(start: number, end: number, hidden: HiddenStates, options?: { signal?: AbortSignal }) {
    this.#check(start, end);
    return this.runtime.forward(start, end, hidden, options);
  }
}

Deno.test({
  name:
    "64 blocks across 16 servers: block selection covers all, the table shows it, routes, greedy = one process",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ck = await makeQwen3Checkpoint({
      numLayers: BLOCKS,
      hiddenSize: 16,
      numHeads: 2,
      numKvHeads: 1,
      headDim: 12,
      intermediateSize: 32,
      shards: 4,
      seed: 64,
    });
    const model = ck.dir;
    const runtime = createBlockRuntime({
      model,
      start: 0,
      end: BLOCKS,
      weights: "fp32",
      threads: 1,
      cacheTokens: 1 << 20,
    });
    const head = createClientHead({ model });
    const tokenizer = await loadTokenizer({ model });
    await Promise.all([runtime.start(), head.start()]);
    const servers: FixtureServer[] = [];
    try {
      // the single process: all 64 blocks in one session
      const local = async (o: Parameters<typeof generateText>[2]) => {
        const session = await runtime.openSession({ start: 0, end: BLOCKS, maxLength: 32, batch: 1 });
        const r = await generateText({ head, tokenizer, session }, PROMPT, o).complete();
        await session.close();
        return r;
      };
      const greedy = { maxNewTokens: MAX_NEW, eosTokenIds: [] };
      const sampling = { ...greedy, temperature: 30, seed: 3 };
      const expected = await local(greedy);
      const expectedSampled = await local(sampling);
      assert.ok(
        new Set(expectedSampled.tokenIds).size > 2,
        `a varied reference: ${expectedSampled.tokenIds}`,
      );

      // servers join one by one, each taking the span block selection gives it for what it sees
      const spans: SelectionSpan[] = [];
      for (const [i, size] of SIZES.entries()) {
        const throughput = 50 + (i * 13) % 40;
        const { start, end } = chooseBestBlocks(spans, BLOCKS, size);
        assert.equal(end - start, size);
        const server = await startFixtureServer({
          model,
          start,
          end,
          numBlocks: BLOCKS,
          hiddenSize: 16,
          runtime: new SpanView(runtime, start, end),
          direct: false,
        });
        servers.push(server);
        spans.push({ peerId: server.peerId, start, end, throughput });
      }
      const coverage = computeCoverage(spans, BLOCKS);
      assert.deepEqual(coverage.flatMap((c, b) => c > 0 ? [] : [b]), [], "every block is served");
      for (const s of servers) for (const t of servers) await s.table.offer(t.signed);

      // the table as `plumise swarm` shows it
      const view = swarmTableView(servers[0].table.entries(), { now: Date.now(), models: [model] });
      const m = view.models[0];
      assert.equal(m.servers.length, 16);
      assert.equal(m.totalBlocks, BLOCKS);
      assert.ok(m.complete);
      assert.deepEqual(
        m.coverage.map((c) => c.servers),
        spans.reduce((acc, s) => {
          for (let b = s.start; b < s.end; b++) acc[b]++;
          return acc;
        }, new Array<number>(BLOCKS).fill(0)),
      );
      const text = formatSwarmTableView(view);
      assert.match(text[0], /16 server\(s\), 16 online; all 64 blocks served/);
      const coverageLines = text.filter((l) => /^\s+blocks \d/.test(l));
      assert.ok(coverageLines.length > 1 && coverageLines.length < BLOCKS, `${coverageLines.length} lines`);

      const client = await connectSwarm({
        model,
        initialPeers: [
          servers[0].addrs[0].includes("/p2p/")
            ? servers[0].addrs[0]
            : `${servers[0].addrs[0]}/p2p/${servers[0].peerId}`,
        ],
        head,
        tokenizer,
        numBlocks: BLOCKS,
        tableRefreshMs: 0,
      });
      try {
        await waitFor(
          async () => (await client.swarmTable.refresh(), client.swarmTable.servers(model).length === 16),
        );
        // a route through all 64 blocks, each hop inside the server's span
        const route = client.plan(32);
        assert.equal(route[0].start, 0);
        assert.equal(route.at(-1)!.end, BLOCKS);
        for (const [i, hop] of route.entries()) {
          if (i > 0) assert.equal(hop.start, route[i - 1].end);
          assert.ok(hop.server.start <= hop.start && hop.end <= hop.server.end, JSON.stringify(hop));
        }
        assert.ok(route.length >= 6 && route.length <= 16, `${route.length} hops`);

        const plain = await client.generate(PROMPT, greedy).complete();
        assert.deepEqual(plain.tokenIds, expected.tokenIds);
        assert.equal(plain.text, expected.text);
        const sampled = await client.generate(PROMPT, sampling).complete();
        assert.deepEqual(sampled.tokenIds, expectedSampled.tokenIds);

        // a server on the route goes away (its blocks are served by others too): same output
        const gone = route.find((hop) => {
          const s = spans.find((x) => x.peerId === hop.server.peerId)!;
          return computeCoverage(spans.filter((x) => x !== s), BLOCKS).every((c) => c > 0);
        });
        assert.ok(gone, "some server on the route is redundant");
        const index = servers.findIndex((s) => s.peerId === gone.server.peerId);
        await servers[index].stop();
        servers.splice(index, 1);
        const session = client.openSession({ maxLength: 32 });
        const after = await client.generateWith(session, PROMPT, greedy).complete();
        assert.deepEqual(after.tokenIds, expected.tokenIds);
        assert.ok(!session.route.some((hop) => hop.server.peerId === gone.server.peerId));
        await session.close();
      } finally {
        await client.stop();
      }
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
      await head.stop();
      await runtime.stop();
      await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
    }
  },
});
