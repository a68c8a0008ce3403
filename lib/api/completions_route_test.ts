import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator, readSse } from "../testing/mod.ts";
import { ApiHandler } from "./api_handler.ts";

function setup(gen = new FakeGenerator()) {
  const handler = new ApiHandler({ generator: gen, metrics: new Metrics() });
  const post = (body: unknown) =>
    handler.app.request("/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  return { gen, handler, post };
}

Deno.test("POST /v1/completions: text_completion with usage; the prompt goes as it is, without a template", async () => {
  const gen = new FakeGenerator({ info: { chatTemplate: "{{ messages }}" } });
  const { post } = setup(gen);
  const r = await post({
    model: "test-org/tiny-model",
    prompt: "Once upon",
    max_tokens: 3,
    temperature: 0,
    seed: 5,
  });
  assert.equal(r.status, 200);
  const b = await r.json();
  assert.match(b.id, /^cmpl-/);
  assert.equal(b.object, "text_completion");
  assert.equal(b.model, "test-org/tiny-model");
  assert.deepEqual(b.choices, [{
    index: 0,
    text: " one two three",
    logprobs: null,
    finish_reason: "length",
  }]);
  assert.deepEqual(b.usage, { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 });
  assert.equal(gen.calls[0].prompt, "Once upon");
  assert.equal(gen.calls[0].templated, undefined, "the chat template is not applied");
  assert.equal(gen.calls[0].params.seed, 5);
  assert.equal(gen.calls[0].params.temperature, 0);
  // OpenAI's default of 16 tokens, and echo
  const e = await (await post({ prompt: ["Hi"], echo: true, stop: " three" })).json();
  assert.equal(e.choices[0].text, "Hi one two");
  assert.equal(e.choices[0].finish_reason, "stop");
  assert.equal(gen.calls[1].params.maxNewTokens, 16);
});

Deno.test("POST /v1/completions: streamed chunks, echo first, finish and usage chunks, then [DONE]", async () => {
  const { post, handler } = setup();
  const r = await post({
    prompt: "Hi",
    max_tokens: 2,
    stream: true,
    echo: true,
    stream_options: { include_usage: true },
  });
  assert.equal(r.status, 200);
  const events = await readSse(r);
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => c.object === "text_completion" && c.id === chunks[0].id));
  assert.deepEqual(chunks.slice(0, -1).map((c) => c.choices[0]?.text), ["Hi", " one", " two", ""]);
  assert.deepEqual(chunks.slice(0, -1).map((c) => c.choices[0].finish_reason), [null, null, null, "length"]);
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.deepEqual(chunks.at(-1).usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
  assert.equal(handler.inFlight, 0);
});

Deno.test("POST /v1/completions: bad and unsupported requests are 400s in OpenAI's shape", async () => {
  const { post, gen } = setup();
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{}, "prompt", /prompt must be a non-empty string/],
    [{ prompt: ["a", "b"] }, "prompt", /holds 2 prompts/],
    [{ prompt: [1, 2, 3] }, "prompt", /prompt as token ids is not supported/],
    [{ prompt: "x", n: 2 }, "n", /n must be 1/],
    [{ prompt: "x", best_of: 3 }, "best_of", /best_of must be 1/],
    [{ prompt: "x", logprobs: 5 }, "logprobs", /logprobs is not supported/],
    [{ prompt: "x", logprobs: 0 }, "logprobs", /logprobs is not supported/], // the chosen tokens' own
    [{ prompt: "x", suffix: "end" }, "suffix", /suffix is not supported/],
    [{ prompt: "x", frequency_penalty: 1 }, "frequency_penalty", /frequency_penalty is not supported/],
    [{ prompt: "x", max_tokens: 0 }, "max_tokens", /max_tokens must be an integer/],
    [{ prompt: "x", model: "other/model" }, "model", /is not served/],
  ];
  for (const [body, param, message] of cases) {
    const r = await post(body);
    assert.ok(r.status === 400 || r.status === 404, `${JSON.stringify(body)}: ${r.status}`);
    const e = (await r.json()).error;
    assert.equal(e.param, param, JSON.stringify(body));
    assert.match(e.message, message);
    assert.equal(typeof e.type, "string");
  }
  // what clients send by default passes
  const ok = await post({
    prompt: "x",
    max_tokens: 1,
    logprobs: null,
    suffix: null,
    n: 1,
    best_of: 1,
    presence_penalty: 0,
  });
  assert.equal(ok.status, 200);
  assert.equal(gen.calls.length, 1);
});
