/**
 * Qwen3 through the swarm with the real runtime: three server processes serve the onnxruntime blocks
 * of a tiny generated Qwen3 checkpoint (q/k norms, head_dim ≠ hidden / heads, Qwen's tokenizer and
 * chat template); greedy and seeded generation through the swarm equal the single process, and so
 * do `plumise generate` and the HTTP API's chat and gateway routes, which render the prompt with
 * Qwen3's template.
 */
import assert from "node:assert/strict";
import { ApiHandler } from "../lib/api/api_handler.ts";
import { renderChatPrompt } from "../lib/api/render_chat_prompt.ts";
import { SwarmGenerator } from "../lib/node/swarm_generator.ts";
import { createBlockRuntime, createClientHead, loadTokenizer } from "../lib/runtime/mod.ts";
import { connectSwarm } from "../lib/swarm/client/connect_swarm.ts";
import { generateText } from "../lib/swarm/client/generate_text.ts";
import { Metrics } from "../lib/util/metrics.ts";
import { makeQwen3Checkpoint } from "./helpers/checkpoint_fixture.ts";
import { type SpawnedFixture, spawnFixtureServer } from "./helpers/swarm_client_fixture.ts";
import { runPlumise } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait_for.ts";

const MAX_NEW = 10;
const MESSAGES = [{ role: "system", content: "Be brief." }, { role: "user", content: "hello world" }];

Deno.test({
  name: "qwen3: 3-server swarm greedy and sampled equal the single process; plumise generate; chat API",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const ck = await makeQwen3Checkpoint({ numLayers: 6, seed: 11, shards: 3 });
    const model = ck.dir;
    const numBlocks = 6;
    const hiddenSize = ck.config.hidden_size as number;
    const head = createClientHead({ model });
    const tokenizer = await loadTokenizer({ model });
    await head.start();
    const prompt = renderChatPrompt(MESSAGES, { chatTemplate: tokenizer.chatTemplate });
    assert.match(prompt, /^<\|im_start\|>system\nBe brief\.<\|im_end\|>\n<\|im_start\|>user\n/);
    const noThinking = prompt + "<think>\n\n</think>\n\n";
    const servers: SpawnedFixture[] = [];
    try {
      // single process: the whole model, same head and tokenizer, same loop
      const local = createBlockRuntime({ model, start: 0, end: numBlocks, weights: "fp32", threads: 1 });
      await local.start();
      const run = async (text: string, o: Parameters<typeof generateText>[2]) => {
        const session = await local.openSession({ start: 0, end: numBlocks, maxLength: 96, batch: 1 });
        const r = await generateText({ head, tokenizer, session }, text, o).complete();
        await session.close();
        return r;
      };
      const expected = await run(prompt, { maxNewTokens: MAX_NEW, eosTokenIds: [] });
      assert.equal(expected.tokenIds.length, MAX_NEW);
      const sampling = { maxNewTokens: MAX_NEW, eosTokenIds: [], temperature: 30, seed: 5 };
      const expectedSampled = await run(prompt, sampling);
      assert.ok(
        new Set(expectedSampled.tokenIds).size > 2,
        `a varied reference: ${expectedSampled.tokenIds}`,
      );
      const expectedChat = await run(noThinking, { maxNewTokens: MAX_NEW, temperature: 0 });
      const expectedGateway = await run(prompt, { maxNewTokens: MAX_NEW, temperature: 0 });
      await local.stop();

      for (const [s, e] of [[0, 2], [2, 4], [4, 6]]) {
        servers.push(
          await spawnFixtureServer({ model, start: s, end: e, numBlocks, hiddenSize, checkpointDir: model }),
        );
      }
      await Promise.all(servers.map((x) => x.addRecords(servers.map((y) => y.signed))));
      const client = await connectSwarm({
        model,
        initialPeers: [servers[0].addrs[0]],
        head,
        tokenizer,
        numBlocks,
        tableRefreshMs: 0,
      });
      try {
        await waitFor(
          async () => (await client.swarmTable.refresh(), client.swarmTable.servers(model).length === 3),
        );
        const plain = await client.generate(prompt, { maxNewTokens: MAX_NEW, eosTokenIds: [] }).complete();
        assert.deepEqual(plain.tokenIds, expected.tokenIds);
        assert.equal(plain.text, expected.text);
        const sampled = await client.generate(prompt, sampling).complete();
        assert.deepEqual(sampled.tokenIds, expectedSampled.tokenIds);

        // the HTTP API over the swarm renders with Qwen3's template
        const api = new ApiHandler({
          generator: new SwarmGenerator({
            model,
            tokenizer,
            head,
            openSession: (maxLength) => Promise.resolve(client.openSession({ maxLength })),
          }),
          metrics: new Metrics(),
        });
        const post = async (path: string, json: unknown) => {
          const r = await api.handle(
            new Request(`http://node.test${path}`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify(json),
            }),
          );
          assert.equal(r.status, 200, await r.clone().text());
          return await r.json();
        };
        const chat = await post("/v1/chat/completions", {
          messages: MESSAGES,
          max_tokens: MAX_NEW,
          temperature: 0,
          chat_template_kwargs: { enable_thinking: false },
        });
        assert.equal(chat.choices[0].message.content, expectedChat.text);
        assert.equal(chat.usage.prompt_tokens, tokenizer.encode(noThinking).length);
        const gateway = await post("/api/v1/generate", {
          inputs: "### SYSTEM:\nBe brief.\n\n### USER:\nhello world\n\n### ASSISTANT:\n",
          messages: MESSAGES,
          parameters: { max_new_tokens: MAX_NEW, do_sample: false, repetition_penalty: 1 },
        });
        assert.equal(gateway.generated_text, expectedGateway.text);
        assert.equal(gateway.num_tokens, expectedGateway.tokenIds.length);
      } finally {
        await client.stop();
      }

      // the CLI (with the binary's permissions) against the same swarm: greedy, default EOS set
      const out = await runPlumise([
        "generate",
        prompt,
        "--model",
        model,
        "--initial-peers",
        servers[0].addrs[0],
        "--max-new-tokens",
        String(MAX_NEW),
        // the reference's fp32 LM head (the CLI's head follows WEIGHTS, int8 by default); the
        // servers run fp32 too
        "--weights",
        "fp32",
        "--json",
      ]);
      assert.equal(out.code, 0, out.stderr);
      const summary = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
      assert.equal(summary.text, expectedGateway.text);
      assert.equal(summary.tokens, expectedGateway.tokenIds.length);
      assert.match(summary.route, /^0:2 via .* => 2:4 via .* => 4:6 via /);
    } finally {
      await Promise.all(servers.map((x) => x.kill()));
      await head.stop();
      await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
    }
  },
});
