import assert from "node:assert/strict";
import { SwarmError } from "../errors.ts";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator, readSse } from "../testing/mod.ts";
import { ApiHandler, type ApiHandlerOptions } from "./api_handler.ts";
import { PROBE_CHARS_PER_TOKEN } from "./generation_run.ts";

const JSON_TYPE = { "content-type": "application/json" };

function setup(options: Partial<ApiHandlerOptions> & { gen?: FakeGenerator } = {}) {
  const gen = options.gen ?? new FakeGenerator();
  const metrics = new Metrics();
  const handler = new ApiHandler({ generator: gen, metrics, ...options });
  /** In-process through hono's `app.request()`; `json` sends a JSON body with its content type. */
  const call = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const { json, ...rest } = init;
    const body = json === undefined ? rest.body : JSON.stringify(json);
    const headers = new Headers(rest.headers);
    if (json !== undefined && !headers.has("content-type")) headers.set("content-type", "application/json");
    return handler.app.request(path, { method: body === undefined ? "GET" : "POST", ...rest, headers, body });
  };
  return { gen, metrics, handler, call };
}

async function bodyOf(r: Response): Promise<Record<string, unknown>> {
  return await r.json() as Record<string, unknown>;
}

Deno.test("GET /health reports ok, model, pipeline mode and the node's status", async () => {
  const { call } = setup({
    status: {
      status: () => ({
        address: "0xAbC0000000000000000000000000000000000001",
        peerId: "12D3KooWTest",
        span: { start: 2, end: 4 },
        state: "online",
        coverage: { totalBlocks: 6, coveredBlocks: 6, complete: true, servers: 3 },
      }),
    },
  });
  const r = await call("/health");
  assert.equal(r.status, 200);
  const b = await bodyOf(r);
  assert.equal(b.status, "ok");
  assert.equal(b.model, "test-org/tiny-model");
  assert.equal(b.mode, "pipeline");
  assert.equal(b.address, "0xAbC0000000000000000000000000000000000001");
  assert.equal(b.peer_id, "12D3KooWTest");
  assert.deepEqual(b.span, { start: 2, end: 4 });
  assert.deepEqual(b.swarm, { total_blocks: 6, covered_blocks: 6, complete: true, servers: 3 });
  assert.equal(typeof b.uptime_seconds, "number");
});

Deno.test("while loading: /health says loading, generation answers 503 with Retry-After", async () => {
  const { gen, call } = setup();
  gen.ready = false;
  assert.equal((await bodyOf(await call("/health"))).status, "loading");
  const r = await call("/api/v1/generate", { json: { inputs: "hi" } });
  assert.equal(r.status, 503);
  assert.equal(r.headers.get("retry-after"), "1");
  const b = await bodyOf(r);
  assert.equal(b.code, "LOADING");
  assert.match(String(b.error), /loading/);
  assert.equal(gen.calls.length, 0);
});

Deno.test("POST /api/v1/generate returns generated_text, num_tokens (new only) and latency_ms", async () => {
  const { gen, call } = setup();
  const r = await call("/api/v1/generate", {
    json: {
      inputs: "Hello",
      parameters: { max_new_tokens: 3, do_sample: false },
      messages: [{ ignored: true }],
    },
  });
  assert.equal(r.status, 200);
  const b = await bodyOf(r);
  assert.equal(b.generated_text, " one two three");
  assert.equal(b.num_tokens, 3);
  assert.equal(typeof b.latency_ms, "number");
  assert.equal(gen.calls[0].prompt, "Hello");
  assert.deepEqual(gen.calls[0].params, {
    maxNewTokens: 3,
    temperature: 0.7,
    topP: 0.9,
    repetitionPenalty: 1.2,
    doSample: false,
  });
});

Deno.test("generate with stream: SSE tokens concatenate to the non-stream text and end with [DONE]", async () => {
  const { call } = setup();
  const plain = await bodyOf(
    await call("/api/v1/generate", { json: { inputs: "x", parameters: { max_new_tokens: 5 } } }),
  );
  const r = await call("/api/v1/generate", {
    json: { inputs: "x", parameters: { max_new_tokens: 5 }, stream: true },
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/event-stream/);
  const events = await readSse(r);
  assert.equal(events.at(-1), "[DONE]");
  const tokens = events.slice(0, -1).map((e) => JSON.parse(e).token as string);
  assert.equal(tokens.length, 5);
  assert.equal(tokens.join(""), plain.generated_text);
});

Deno.test("bad generate requests get 400 with the field, the value and a hint; nothing is generated", async () => {
  const { gen, call } = setup();
  const cases: Array<[unknown, RegExp]> = [
    [
      { inputs: "a", parameters: { max_new_tokens: 0 } },
      /max_new_tokens must be an integer in 1\.\.4096, got 0/,
    ],
    [{ inputs: "a", parameters: { max_new_tokens: 1_000_000 } }, /max_new_tokens.*got 1000000/],
    [{ inputs: "a", parameters: { max_new_tokens: 2.5 } }, /max_new_tokens.*got 2\.5/],
    [{ inputs: "a", parameters: { temperature: -1 } }, /temperature must be a number in 0\.\.2, got -1/],
    [{ inputs: "a", parameters: { top_p: 1.5 } }, /top_p must be a number in 0\.\.1, got 1\.5/],
    [{ inputs: "a", parameters: { repetition_penalty: 0.5 } }, /repetition_penalty .*1\.\.2, got 0\.5/],
    [{ inputs: "a", parameters: { do_sample: "yes" } }, /do_sample must be true or false, got "yes"/],
    [{ inputs: "a", parameters: "fast" }, /parameters must be an object/],
    [{ inputs: "a", stream: "yes" }, /stream must be true or false/],
    [{ inputs: "" }, /inputs must be a non-empty string, got ""/],
    [{ prompt: "a" }, /inputs must be a non-empty string, got undefined/],
    [[1, 2], /must be a JSON object, got an array/],
  ];
  for (const [json, re] of cases) {
    const r = await call("/api/v1/generate", { json });
    assert.equal(r.status, 400, JSON.stringify(json));
    const b = await bodyOf(r);
    assert.match(String(b.error), re);
    assert.ok(typeof b.hint === "string" && b.hint.length > 0, `hint for ${JSON.stringify(json)}`);
  }
  const r = await call("/api/v1/generate", { method: "POST", body: "{not json", headers: JSON_TYPE });
  assert.equal(r.status, 400);
  const b = await bodyOf(r);
  assert.equal(b.code, "INVALID_JSON");
  assert.match(String(b.error), /not valid JSON/);
  assert.equal(gen.calls.length, 0);
  // and the handler still serves
  assert.equal((await call("/api/v1/generate", { json: { inputs: "ok" } })).status, 200);
});

Deno.test("chat completions: OpenAI shape with usage, plain fallback prompt without a template", async () => {
  const { gen, call } = setup();
  const r = await call("/v1/chat/completions", {
    json: {
      model: "test-org/tiny-model",
      messages: [{ role: "system", content: "Be brief." }, {
        role: "user",
        content: [{ type: "text", text: "Hi" }],
      }],
      max_tokens: 2,
      temperature: 0,
    },
  });
  assert.equal(r.status, 200);
  const b = await bodyOf(r) as {
    id: string;
    object: string;
    model: string;
    choices: Array<{ index: number; message: { role: string; content: string }; finish_reason: string }>;
    usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  };
  assert.match(b.id, /^chatcmpl-/);
  assert.equal(b.object, "chat.completion");
  assert.equal(b.model, "test-org/tiny-model");
  assert.equal(b.choices[0].index, 0);
  assert.deepEqual(b.choices[0].message, { role: "assistant", content: " one two" });
  assert.equal(b.choices[0].finish_reason, "length");
  assert.equal(gen.calls[0].prompt, "System: Be brief.\nUser: Hi\nAssistant:");
  assert.equal(gen.calls[0].params.temperature, 0);
  assert.equal(b.usage.prompt_tokens, gen.countTokens(gen.calls[0].prompt));
  assert.equal(b.usage.completion_tokens, 2);
  assert.equal(b.usage.total_tokens, b.usage.prompt_tokens + 2);
});

Deno.test("chat completions use the checkpoint's chat template with its special tokens", async () => {
  const gen = new FakeGenerator({
    script: [" fine"],
    info: {
      chatTemplate:
        "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
      specialTokens: { bos_token: "<s>", eos_token: "</s>" },
    },
  });
  const { call } = setup({ gen });
  const r = await call("/v1/chat/completions", {
    json: { messages: [{ role: "user", content: "How are you?" }] },
  });
  assert.equal(r.status, 200);
  assert.equal(gen.calls[0].prompt, "<s><|user|>How are you?</s><|assistant|>");
  const b = await bodyOf(r) as { choices: Array<{ message: { content: string }; finish_reason: string }> };
  assert.equal(b.choices[0].message.content, " fine");
  assert.equal(b.choices[0].finish_reason, "stop");
});

Deno.test("chat streaming: role chunk, content deltas, finish chunk, usage chunk, [DONE]", async () => {
  const { call } = setup();
  const r = await call("/v1/chat/completions", {
    json: {
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 3,
      stream: true,
      stream_options: { include_usage: true },
    },
  });
  assert.equal(r.status, 200);
  const events = await readSse(r);
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  for (const c of chunks) {
    assert.equal(c.object, "chat.completion.chunk");
    assert.equal(c.id, chunks[0].id);
  }
  assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const content = chunks.slice(1, -2).map((c) => c.choices[0].delta.content).join("");
  assert.equal(content, " one two three");
  assert.equal(chunks.at(-2).choices[0].finish_reason, "length");
  assert.deepEqual(chunks.at(-2).choices[0].delta, {});
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.equal(chunks.at(-1).usage.completion_tokens, 3);
});

Deno.test("unknown model: chat and /v1/models/{id} answer 404 model_not_found in OpenAI's error shape", async () => {
  const { gen, call } = setup();
  const r = await call("/v1/chat/completions", {
    json: { model: "gpt-4", messages: [{ role: "user", content: "x" }] },
  });
  assert.equal(r.status, 404);
  const b = await bodyOf(r) as { error: { message: string; type: string; code: string; param: string } };
  assert.equal(b.error.code, "model_not_found");
  assert.equal(b.error.param, "model");
  assert.match(b.error.message, /"gpt-4" is not served/);
  assert.equal(gen.calls.length, 0);
  assert.equal((await call("/v1/models/gpt-4")).status, 404);
  assert.equal((await call("/v1/models/test-org%2Ftiny-model")).status, 200);
});

Deno.test("bad chat requests get 400 naming the field", async () => {
  const { call } = setup();
  const cases: Array<[unknown, RegExp]> = [
    [{ messages: [] }, /messages must be a non-empty array/],
    [{ messages: [{ role: "wizard", content: "x" }] }, /messages\[0\]\.role must be one of/],
    [{ messages: [{ role: "user", content: 5 }] }, /messages\[0\]\.content must be a string/],
    [
      { messages: [{ role: "user", content: "x" }], max_tokens: 0 },
      /max_tokens must be an integer in 1\.\.4096, got 0/,
    ],
    [{ messages: [{ role: "user", content: "x" }], temperature: -1 }, /temperature .* got -1/],
    [{ messages: [{ role: "user", content: "x" }], n: 2 }, /n must be 1/],
    [{ messages: [{ role: "user", content: "x" }], stop: ["a", "b", "c", "d", "e"] }, /stop must be/],
  ];
  for (const [json, re] of cases) {
    const r = await call("/v1/chat/completions", { json });
    assert.equal(r.status, 400, JSON.stringify(json));
    const b = await bodyOf(r) as { error: { message: string; type: string } };
    assert.equal(b.error.type, "invalid_request_error");
    assert.match(b.error.message, re);
  }
});

Deno.test("GET /v1/models lists the served model", async () => {
  const { call } = setup({ gen: new FakeGenerator({ info: { createdAt: 1_700_000_000 } }) });
  const b = await bodyOf(await call("/v1/models"));
  assert.deepEqual(b, {
    object: "list",
    data: [{ id: "test-org/tiny-model", object: "model", created: 1_700_000_000, owned_by: "plumise" }],
  });
});

Deno.test("GET /metrics renders Prometheus text with API counters and the latency histogram", async () => {
  const { call } = setup();
  await call("/api/v1/generate", { json: { inputs: "a", parameters: { max_new_tokens: 2 } } });
  await call("/api/v1/generate", { json: { inputs: "" } });
  const r = await call("/metrics");
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  assert.match(text, /^plumise_api_requests_total\{route="generate",status="200"\} 1$/m);
  assert.match(text, /^plumise_api_requests_total\{route="generate",status="400"\} 1$/m);
  assert.match(text, /^plumise_api_generated_tokens_total 2$/m);
  assert.match(text, /^plumise_api_request_ms_bucket\{route="generate",le="\+Inf"\} 2$/m);
  assert.match(text, /^plumise_api_in_flight 0$/m);
  assert.match(text, /^# TYPE plumise_uptime_seconds gauge$/m);
});

Deno.test("bearer token: required everywhere but /health, compared exactly", async () => {
  const { call } = setup({ apiSecret: "s3cret-token" });
  assert.equal((await call("/health")).status, 200);
  const none = await call("/api/v1/generate", { json: { inputs: "a" } });
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), "Bearer");
  assert.match(String((await bodyOf(none)).hint), /Authorization: Bearer/);
  const wrong = await call("/metrics", { headers: { authorization: "Bearer s3cret-tokem" } });
  assert.equal(wrong.status, 401);
  const chat = await call("/v1/chat/completions", {
    json: { messages: [{ role: "user", content: "x" }] },
    headers: { authorization: "Bearer nope" },
  });
  assert.equal(chat.status, 401);
  assert.equal((await bodyOf(chat) as { error: { type: string } }).error.type, "authentication_error");
  const ok = await call("/api/v1/generate", {
    json: { inputs: "a", parameters: { max_new_tokens: 1 } },
    headers: { authorization: "Bearer s3cret-token" },
  });
  assert.equal(ok.status, 200);
});

Deno.test("concurrency limit: the request over the limit gets 429, the others complete", async () => {
  const { gen, call, handler } = setup({ maxConcurrent: 2 });
  const gate = gen.hold();
  const a = call("/api/v1/generate", { json: { inputs: "a", parameters: { max_new_tokens: 2 } } });
  const b = call("/api/v1/generate", { json: { inputs: "b", parameters: { max_new_tokens: 2 } } });
  await gen.started(2);
  assert.equal(handler.inFlight, 2);
  const c = await call("/api/v1/generate", { json: { inputs: "c" } });
  assert.equal(c.status, 429);
  assert.equal(c.headers.get("retry-after"), "1");
  assert.match(String((await bodyOf(c)).error), /2 generations are running, the limit is 2/);
  gate.open();
  assert.equal((await a).status, 200);
  assert.equal((await b).status, 200);
  assert.equal(handler.inFlight, 0);
  assert.equal((await call("/api/v1/generate", { json: { inputs: "d" } })).status, 200);
});

Deno.test("request timeout: a generation that does not finish gets 504 and is aborted", async () => {
  const gen = new FakeGenerator({ hang: true, script: [] });
  const { call, handler } = setup({ gen, requestTimeoutMs: 50 });
  const r = await call("/api/v1/generate", { json: { inputs: "a" } });
  assert.equal(r.status, 504);
  const b = await bodyOf(r);
  assert.equal(b.code, "TIMEOUT");
  assert.match(String(b.error), /within 50 ms/);
  // OpenAI's SDKs would otherwise run it twice more
  assert.equal(r.headers.get("x-should-retry"), "false");
  assert.equal(gen.aborted, 1);
  assert.equal(handler.inFlight, 0);
});

Deno.test("stream timeout after the first token ends the stream with an error event", async () => {
  const gen = new FakeGenerator({ hang: true, script: [" a"] });
  const { call, handler } = setup({ gen, requestTimeoutMs: 50 });
  const r = await call("/api/v1/generate", { json: { inputs: "a", stream: true } });
  assert.equal(r.status, 200);
  const events = await readSse(r);
  assert.deepEqual(JSON.parse(events[0]), { token: " a" });
  assert.match(JSON.parse(events[1]).error, /within 50 ms/);
  assert.equal(events.length, 2);
  assert.equal(handler.inFlight, 0);
});

Deno.test("a swarm failure before the first token gets a real 503, also when streaming", async () => {
  const gen = new FakeGenerator({
    fail: {
      at: 0,
      error: new SwarmError("MISSING_BLOCKS", "no server covers blocks 2..4", { hint: "wait for peers" }),
    },
  });
  const { call } = setup({ gen });
  for (const stream of [false, true]) {
    const r = await call("/api/v1/generate", { json: { inputs: "a", stream } });
    assert.equal(r.status, 503);
    const b = await bodyOf(r);
    assert.equal(b.code, "MISSING_BLOCKS");
    assert.match(String(b.error), /no server covers blocks 2\.\.4/);
  }
});

Deno.test("a failure mid-stream ends with data: {error}", async () => {
  const gen = new FakeGenerator({ fail: { at: 2, error: new Error("boom") } });
  const { call, handler } = setup({ gen });
  const events = await readSse(await call("/api/v1/generate", { json: { inputs: "a", stream: true } }));
  assert.deepEqual(events.slice(0, 2).map((e) => JSON.parse(e).token), [" one", " two"]);
  assert.match(JSON.parse(events[2]).error, /^internal error [0-9a-f]{12}: the node's log has the details$/);
  assert.doesNotMatch(events[2], /boom/, "a 500 does not echo its internal message");
  assert.equal(events.includes("[DONE]"), false);
  assert.equal(handler.inFlight, 0);
});

Deno.test("stop strings end the generation and never appear in the output", async () => {
  const gen = new FakeGenerator({ script: [" Hi", " there.", "\nUs", "er:", " more"] });
  const { call } = setup({ gen });
  const b = await bodyOf(
    await call("/api/v1/generate", { json: { inputs: "a", parameters: { stop: ["\nUser:"] } } }),
  );
  assert.equal(b.generated_text, " Hi there.");
  assert.equal(b.num_tokens, 4);
  assert.equal(gen.ended, 1);
  const events = await readSse(
    await call("/v1/chat/completions", {
      json: { messages: [{ role: "user", content: "x" }], stop: "\nUser:", stream: true },
    }),
  );
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks.map((c) => c.choices[0].delta.content ?? "").join(""), " Hi there.");
  assert.equal(chunks.at(-1).choices[0].finish_reason, "stop");
});

Deno.test("context limit: max_new_tokens is capped to what is left; a prompt that does not fit gets 400", async () => {
  const gen = new FakeGenerator({ info: { maxContextTokens: 5 } });
  const { call } = setup({ gen });
  const b = await bodyOf(
    await call("/api/v1/generate", { json: { inputs: "a b", parameters: { max_new_tokens: 100 } } }),
  );
  assert.equal(b.num_tokens, 3);
  assert.equal(gen.calls[0].params.maxNewTokens, 3);
  const r = await call("/api/v1/generate", { json: { inputs: "a b c d e f" } });
  assert.equal(r.status, 400);
  assert.match(
    String((await bodyOf(r)).error),
    /the prompt is 6 tokens; the model's maximum context length is 5 tokens/,
  );
});

Deno.test("context limit: a huge prompt is refused from its prefix, never tokenized whole", async () => {
  const gen = new FakeGenerator({ info: { maxContextTokens: 100 } });
  const counted: number[] = [];
  const count = gen.countTokens.bind(gen);
  gen.countTokens = (text, options) => (counted.push(text.length), count(text, options));
  const { call } = setup({ gen });
  const inputs = "word ".repeat(200_000); // a megabyte
  const r = await call("/api/v1/generate", { json: { inputs } });
  assert.equal(r.status, 400);
  assert.match(
    String((await bodyOf(r)).error),
    /the prompt is at least \d+ tokens; the model's maximum context length is 100/,
  );
  assert.deepEqual(counted, [100 * PROBE_CHARS_PER_TOKEN], "only the prefix was tokenized");
  // a prompt that fits is counted once, whole
  counted.length = 0;
  assert.equal((await call("/api/v1/generate", { json: { inputs: "a b c" } })).status, 200);
  assert.deepEqual(counted, [5]);
});

Deno.test("chat prompts rendered by the checkpoint's template are generated without added special tokens", async () => {
  const withTemplate = new FakeGenerator({
    info: { chatTemplate: "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}" },
  });
  const a = setup({ gen: withTemplate });
  const messages = [{ role: "user", content: "hi" }];
  assert.equal((await a.call("/v1/chat/completions", { json: { messages } })).status, 200);
  assert.equal((await a.call("/api/v1/generate", { json: { messages } })).status, 200);
  assert.deepEqual(withTemplate.calls.map((c) => c.templated), [true, true]);
  // the plain fallback (no template) is a raw prompt: the tokenizer adds what it adds
  const plain = new FakeGenerator();
  const b = setup({ gen: plain });
  assert.equal((await b.call("/v1/chat/completions", { json: { messages } })).status, 200);
  assert.equal((await b.call("/api/v1/generate", { json: { inputs: "hi" } })).status, 200);
  assert.deepEqual(plain.calls.map((c) => c.templated), [undefined, undefined]);
});

Deno.test("unknown routes get 404, wrong methods 405 with Allow", async () => {
  const { call } = setup();
  const r = await call("/nope");
  assert.equal(r.status, 404);
  assert.match(String((await bodyOf(r)).hint), /POST \/api\/v1\/generate/);
  const m = await call("/api/v1/generate");
  assert.equal(m.status, 405);
  assert.equal(m.headers.get("allow"), "POST");
});

Deno.test("drain: running generations finish, new ones get 503, stragglers are aborted after the grace", async () => {
  const { gen, call, handler } = setup();
  const gate = gen.hold();
  const running = call("/api/v1/generate", { json: { inputs: "a", parameters: { max_new_tokens: 2 } } });
  await gen.started(1);
  const draining = handler.drain(10_000);
  const refused = await call("/api/v1/generate", { json: { inputs: "b" } });
  assert.equal(refused.status, 503);
  assert.equal((await bodyOf(refused)).code, "SHUTTING_DOWN");
  assert.equal((await bodyOf(await call("/health"))).status, "stopping");
  gate.open();
  assert.equal((await running).status, 200);
  await draining;

  const s = setup({ gen: new FakeGenerator({ hang: true, script: [" x"] }) });
  const stream = await s.call("/api/v1/generate", { json: { inputs: "a", stream: true } });
  await s.handler.drain(0);
  const events = await readSse(stream);
  assert.deepEqual(JSON.parse(events[0]), { token: " x" });
  assert.match(JSON.parse(events[1]).error, /shutting down/);
  assert.equal(s.handler.inFlight, 0);
});

Deno.test("prepare() runs before generation; its failure answers the request (503) and the next one retries", async () => {
  const { gen, call } = setup();
  gen.prepareError = new SwarmError("NO_PEERS", "no server record came from the initial peers");
  const r = await call("/api/v1/generate", { json: { inputs: "a" } });
  assert.equal(r.status, 503);
  assert.match(String((await bodyOf(r)).error), /no server record/);
  assert.equal(gen.calls.length, 0);
  gen.prepareError = undefined;
  assert.equal(
    (await call("/v1/chat/completions", { json: { messages: [{ role: "user", content: "x" }] } })).status,
    200,
  );
  assert.equal(gen.prepared, 2);
});
