import assert from "node:assert/strict";
import { FakeBackend, FakeHead, FakeSwarm, FakeTokenizer, readSse } from "../testing/mod.ts";
import { ApiHandler } from "../api/api_handler.ts";
import { generateText } from "../swarm/client/generate_text.ts";
import { SwarmInferenceSession } from "../swarm/client/swarm_inference_session.ts";
import { Metrics } from "../util/metrics.ts";
import { SwarmGenerator } from "./swarm_generator.ts";
import { tokenizerFromJson } from "../runtime/hf_tokenizer.ts";
import { buildTokenizer } from "../../tests/helpers/tokenizer_fixture.ts";

const H = 16;

async function localGreedy(prompt: string, maxNewTokens: number): Promise<string> {
  const b = new FakeBackend({ hiddenSize: H, numBlocks: 9 });
  await b.start();
  const session = await b.openSession({ start: 0, end: 9, maxLength: 128, batch: 1 });
  const gen = generateText({ head: new FakeHead(H), tokenizer: new FakeTokenizer(), session }, prompt, {
    maxNewTokens,
  });
  return (await gen.complete()).text;
}

async function swarmSetup() {
  const swarm = new FakeSwarm({ numBlocks: 9, hiddenSize: H });
  await swarm.addServer("A", 0, 3);
  await swarm.addServer("B", 3, 6);
  await swarm.addServer("C", 6, 9);
  await swarm.addServer("B2", 3, 6, { inferenceRps: 1 });
  const sessions: SwarmInferenceSession[] = [];
  const generator = new SwarmGenerator({
    model: swarm.model,
    head: new FakeHead(H),
    tokenizer: new FakeTokenizer(),
    maxContextTokens: 128,
    openSession: (maxLength) => {
      const s = new SwarmInferenceSession({
        model: swarm.model,
        start: 0,
        end: 9,
        maxLength,
        table: swarm,
        transport: swarm,
      });
      sessions.push(s);
      return Promise.resolve(s);
    },
  });
  const api = new ApiHandler({ generator, metrics: new Metrics() });
  const post = (path: string, body: unknown) =>
    api.app.request(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  return { swarm, sessions, generator, post };
}

Deno.test("the API over the swarm returns the single-process greedy text; sessions are closed", async () => {
  const expected = await localGreedy("the quick fox", 12);
  const { post, sessions } = await swarmSetup();
  const params = { max_new_tokens: 12, do_sample: false, repetition_penalty: 1 };
  const r = await post("/api/v1/generate", { inputs: "the quick fox", parameters: params });
  assert.equal(r.status, 200);
  const b = await r.json();
  assert.equal(b.generated_text, expected);
  const events = await readSse(
    await post("/api/v1/generate", { inputs: "the quick fox", parameters: params, stream: true }),
  );
  assert.equal(events.at(-1), "[DONE]");
  assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).token).join(""), expected);
  assert.equal(sessions.length, 2);
  assert.ok(sessions.every((s) => s.closed), "every swarm session is closed after its request");
});

Deno.test("a server killed during a streamed generation: the stream completes with the same text", async () => {
  const expected = await localGreedy("hello world", 16);
  const { post, swarm, sessions } = await swarmSetup();
  let steps = 0;
  swarm.onStep = (e) => {
    if (e.peerId === "A") steps++;
    if (e.peerId === "B" && steps === 6) swarm.kill("B");
  };
  const events = await readSse(
    await post("/api/v1/generate", {
      inputs: "hello world",
      parameters: { max_new_tokens: 16, do_sample: false, repetition_penalty: 1 },
      stream: true,
    }),
  );
  assert.equal(events.at(-1), "[DONE]");
  assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).token).join(""), expected);
  assert.equal(sessions[0].stats.failures, 1, "a failover happened");
});

Deno.test("SwarmGenerator maps sampling: do_sample false means greedy whatever the temperature", async () => {
  const { post } = await swarmSetup();
  const a = await (await post("/api/v1/generate", {
    inputs: "abc",
    parameters: { max_new_tokens: 8, do_sample: false, temperature: 1.5, repetition_penalty: 1 },
  })).json();
  assert.equal(a.generated_text, await localGreedy("abc", 8));
});

Deno.test("SwarmGenerator: a request's seed makes sampling repeatable", async () => {
  const { post } = await swarmSetup();
  const ask = async (seed?: number) => {
    const r = await (await post("/api/v1/generate", {
      inputs: "abc",
      parameters: {
        max_new_tokens: 12,
        do_sample: true,
        temperature: 1.5,
        ...(seed === undefined ? {} : { seed }),
      },
    })).json();
    assert.equal(typeof r.generated_text, "string", JSON.stringify(r));
    return r.generated_text as string;
  };
  const [a, b] = [await ask(7), await ask(7)];
  // before: the seed never reached the sampler, and the same seed gave another text each time
  assert.equal(a, b);
  const others = new Set([await ask(8), await ask(), await ask(), await ask()]);
  assert.ok(others.size > 1, "without a seed (or with another) the texts differ");
});

Deno.test("SwarmGenerator: a templated chat prompt is encoded without a second BOS; counted and generated alike", async () => {
  const BOS = "<|begin_of_text|>";
  const built = buildTokenizer({ specialsFirst: false, specials: [BOS, "<|eot_id|>"], bosPrepend: BOS });
  const tokenizer = tokenizerFromJson(built.json, { bos_token: BOS, eos_token: "<|eot_id|>" });
  const bos = built.ids.get(BOS)!;
  const lengths: number[] = [];
  const generator = new SwarmGenerator({
    model: "m",
    head: new FakeHead(H),
    tokenizer,
    openSession: (maxLength) => {
      lengths.push(maxLength);
      return Promise.reject(new Error("no swarm in this test"));
    },
  });
  const rendered = `${BOS}hi`; // what a template with {{ bos_token }} renders
  const raw = tokenizer.encode(rendered);
  assert.deepEqual(raw.slice(0, 2), [bos, bos], "the tokenizer's own post-processor adds one more");
  const n = generator.countTokens(rendered, { templated: true });
  assert.equal(n, raw.length - 1);
  assert.equal(generator.countTokens("hi"), tokenizer.encode("hi").length, "a raw prompt gets the BOS");
  const gen = generator.generate(rendered, {
    maxNewTokens: 4,
    temperature: 0,
    topP: 1,
    repetitionPenalty: 1,
    doSample: false,
  }, {
    signal: new AbortController().signal,
    templated: true,
  });
  await assert.rejects(gen[Symbol.asyncIterator]().next(), /no swarm/);
  assert.deepEqual(lengths, [n + 4], "the session is sized for the same encoding");
});
