/**
 * The API and the checkpoint's chat template (Qwen3's, as published): `/v1/chat/completions` with
 * `chat_template_kwargs`, and the gateway's `messages` beside `inputs` on `/api/v1/generate`.
 */
import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import { QWEN3_CHAT_TEMPLATE } from "../../tests/helpers/tokenizer_fixture.ts";
import { FakeGenerator } from "../testing/mod.ts";
import { ApiHandler } from "./api_handler.ts";

const qwen3Info = {
  chatTemplate: QWEN3_CHAT_TEMPLATE,
  specialTokens: { eos_token: "<|im_end|>", pad_token: "<|endoftext|>" },
};

function setup(info: Partial<ReturnType<FakeGenerator["info"]>> = qwen3Info) {
  const gen = new FakeGenerator({ script: [" 4"], info });
  const handler = new ApiHandler({ generator: gen, metrics: new Metrics() });
  const call = async (path: string, json: unknown) => {
    const r = await handler.handle(
      new Request(`http://node.test${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(json),
      }),
    );
    return { status: r.status, body: await r.json() as Record<string, unknown> };
  };
  return { gen, call };
}

/** What the gateway sends (plumise-inference-api): its own "### ROLE:" rendering plus the turns. */
const gatewayBody = {
  inputs: "### SYSTEM:\nBe brief.\n\n### USER:\n2+2?\n\n### ASSISTANT:\n",
  messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "2+2?" }],
  parameters: { max_new_tokens: 8, temperature: 0.7, top_p: 0.9, repetition_penalty: 1.3, do_sample: true },
};
const QWEN3_PROMPT =
  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n";

Deno.test("generate: the gateway's messages render with the model's chat template instead of inputs", async () => {
  const { gen, call } = setup();
  const r = await call("/api/v1/generate", gatewayBody);
  assert.equal(r.status, 200);
  assert.equal(gen.calls[0].prompt, QWEN3_PROMPT);
  assert.equal(r.body.generated_text, " 4");
  // messages alone (no inputs) are enough
  assert.equal((await call("/api/v1/generate", { messages: gatewayBody.messages })).status, 200);
  assert.equal(gen.calls[1].prompt, QWEN3_PROMPT);
});

Deno.test("generate: without a chat template the gateway's inputs stay the prompt; bad messages are ignored", async () => {
  const { gen, call } = setup({});
  assert.equal((await call("/api/v1/generate", gatewayBody)).status, 200);
  assert.equal(gen.calls[0].prompt, gatewayBody.inputs);
  // only messages and no template: the plain fallback
  assert.equal((await call("/api/v1/generate", { messages: gatewayBody.messages })).status, 200);
  assert.equal(gen.calls[1].prompt, "System: Be brief.\nUser: 2+2?\nAssistant:");
  // malformed messages next to inputs: inputs, as before messages were read
  const templated = setup();
  const bad = { ...gatewayBody, messages: [{ role: "wizard", content: "x" }] };
  assert.equal((await templated.call("/api/v1/generate", bad)).status, 200);
  assert.equal(templated.gen.calls[0].prompt, gatewayBody.inputs);
  // malformed messages and no inputs: 400 naming the field
  const r = await templated.call("/api/v1/generate", { messages: [{ role: "wizard", content: "x" }] });
  assert.equal(r.status, 400);
  assert.match(String(r.body.error), /messages\[0\]\.role must be one of/);
});

Deno.test("chat completions: Qwen3's template, chat_template_kwargs.enable_thinking, bad kwargs are 400", async () => {
  const { gen, call } = setup();
  const messages = gatewayBody.messages;
  assert.equal((await call("/v1/chat/completions", { messages })).status, 200);
  assert.equal(gen.calls[0].prompt, QWEN3_PROMPT);
  const off = await call("/v1/chat/completions", {
    messages,
    chat_template_kwargs: { enable_thinking: false },
  });
  assert.equal(off.status, 200);
  assert.equal(gen.calls[1].prompt, QWEN3_PROMPT + "<think>\n\n</think>\n\n");
  const cases: Array<[unknown, RegExp]> = [
    ["no", /chat_template_kwargs must be an object/],
    [{ messages: [] }, /chat_template_kwargs key "messages" must be an identifier other than/],
    [{ "a-b": 1 }, /chat_template_kwargs key "a-b"/],
    [{ enable_thinking: [false] }, /chat_template_kwargs\.enable_thinking must be a string, number, boolean/],
  ];
  for (const [kwargs, re] of cases) {
    const r = await call("/v1/chat/completions", { messages, chat_template_kwargs: kwargs });
    assert.equal(r.status, 400, JSON.stringify(kwargs));
    const error = r.body.error as { message: string; type: string };
    assert.equal(error.type, "invalid_request_error");
    assert.match(error.message, re);
  }
  assert.equal(gen.calls.length, 2);
});
