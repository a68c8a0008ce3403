/**
 * The swarm client with the real runtime: three server processes run onnxruntime blocks of a tiny
 * generated BLOOM checkpoint; the client runs the real head and tokenizer; greedy generation through
 * the swarm (including a SIGKILL failover) equals the single-process run of the whole model, and
 * `plumise generate` prints the same text.
 */
import assert from "node:assert/strict";
import { createBlockRuntime, createClientHead, loadTokenizer } from "../lib/runtime/mod.ts";
import { connectSwarm } from "../lib/swarm/client/connect_swarm.ts";
import { generateText } from "../lib/swarm/client/generate_text.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { type SpawnedFixture, spawnFixtureServer } from "./helpers/swarm_client_fixture.ts";
import { runPlumise } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait_for.ts";

const PROMPT = "hello world";
const MAX_NEW = 10;

Deno.test({
  name: "real runtime: 3-server swarm greedy equals single-process; failover; plumise generate",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ck = await makeBloomCheckpoint({ numLayers: 6, seed: 7 });
    const model = ck.dir;
    const numBlocks = 6;
    const hiddenSize = Number(ck.config.hidden_size ?? ck.config.n_embed);
    const head = createClientHead({ model });
    const tokenizer = await loadTokenizer({ model });
    await head.start();
    const servers: SpawnedFixture[] = [];
    try {
      // single process: the whole model, same head, same loop
      const local = createBlockRuntime({ model, start: 0, end: numBlocks, weights: "fp32", threads: 1 });
      await local.start();
      const session = await local.openSession({ start: 0, end: numBlocks, maxLength: 64, batch: 1 });
      const expected = await generateText({ head, tokenizer, session }, PROMPT, {
        maxNewTokens: MAX_NEW,
        eosTokenIds: [],
      })
        .complete();
      assert.equal(expected.tokenIds.length, MAX_NEW);
      // random tiny models repeat one token under greedy decoding; seeded sampling gives a varied sequence
      // that still must match exactly (the swarm's logits are bit-identical to the single process's)
      const sampling = { maxNewTokens: MAX_NEW, eosTokenIds: [], temperature: 30, seed: 5 };
      const s0 = await local.openSession({ start: 0, end: numBlocks, maxLength: 64, batch: 1 });
      const expectedSampled = await generateText({ head, tokenizer, session: s0 }, PROMPT, sampling)
        .complete();
      assert.ok(
        new Set(expectedSampled.tokenIds).size > 2,
        `a varied reference: ${expectedSampled.tokenIds}`,
      );
      await local.stop();

      for (const [s, e] of [[0, 2], [2, 4], [4, 6], [2, 4]]) {
        servers.push(
          await spawnFixtureServer({ model, start: s, end: e, numBlocks, hiddenSize, checkpointDir: model }),
        );
      }
      await Promise.all(servers.map((x) => x.addRecords(servers.map((y) => y.signed))));
      const initial = servers[0].addrs[0];
      const client = await connectSwarm({
        model,
        initialPeers: [initial],
        head,
        tokenizer,
        numBlocks,
        tableRefreshMs: 0,
      });
      try {
        await waitFor(
          async () => (await client.swarmTable.refresh(), client.swarmTable.servers(model).length === 4),
        );
        const plain = await client.generate(PROMPT, { maxNewTokens: MAX_NEW, eosTokenIds: [] }).complete();
        assert.deepEqual(plain.tokenIds, expected.tokenIds);
        assert.equal(plain.text, expected.text);
        const sampled = await client.generate(PROMPT, sampling).complete();
        assert.deepEqual(sampled.tokenIds, expectedSampled.tokenIds);

        // SIGKILL the server of blocks 2..4 that the session uses at step 3; the spare takes over
        const s = client.openSession({ maxLength: 64 });
        let steps = 0;
        const proxy = {
          get position() {
            return s.position;
          },
          maxLength: s.maxLength,
          async step(h: Parameters<typeof s.step>[0], o?: { signal?: AbortSignal }) {
            const y = await s.step(h, o);
            if (++steps === 3) {
              const used = s.route.find((r) => r.start === 2)!.server.peerId;
              await servers.find((x) => x.peerId === used)!.kill();
            }
            return y;
          },
        };
        const failover = await client.generateWith(proxy, PROMPT, { maxNewTokens: MAX_NEW, eosTokenIds: [] })
          .complete();
        await s.close();
        assert.deepEqual(failover.tokenIds, expected.tokenIds);
        assert.equal(s.stats.failures, 1);
      } finally {
        await client.stop();
      }

      // the CLI (with the binary's permissions) against the same swarm
      const out = await runPlumise([
        "generate",
        PROMPT,
        "--model",
        model,
        "--initial-peers",
        servers[0].addrs[0],
        "--max-new-tokens",
        String(MAX_NEW),
        "--json",
      ]);
      const stderr = out.stderr;
      assert.equal(out.code, 0, stderr);
      const summary = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
      assert.equal(summary.text, expected.text);
      assert.equal(summary.tokens, MAX_NEW);
      assert.match(summary.route, /^0:2 via .* => 2:4 via .* => 4:6 via /);
      assert.ok(summary.tokensPerSecond > 0);
    } finally {
      await Promise.all(servers.map((x) => x.kill()));
      await head.stop();
      await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
    }
  },
});
