import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { parseOpenAiCommon } from "./openai_request.ts";

const spec = {
  defaults: { maxNewTokens: 9, temperature: 1, topP: 1, repetitionPenalty: 1, doSample: true },
  unsupported: { logit_bias: { idle: (v: unknown) => v === null, hint: "leave it out" } },
  maxFields: ["max_completion_tokens", "max_tokens"],
  single: ["n"],
};

Deno.test("parseOpenAiCommon: defaults, the first token cap given, one choice, refused fields", () => {
  const r = parseOpenAiCommon({}, spec);
  assert.deepEqual(r, {
    model: undefined,
    params: spec.defaults,
    stop: [],
    stream: false,
    includeUsage: false,
  });
  const s = parseOpenAiCommon({
    model: "m",
    max_tokens: 5,
    max_completion_tokens: 7,
    n: 1,
    seed: 3,
    stop: "x",
    stream: true,
    stream_options: { include_usage: true },
  }, spec);
  assert.equal(s.params.maxNewTokens, 7, "max_completion_tokens before max_tokens");
  assert.deepEqual([s.model, s.params.seed, s.stop, s.stream, s.includeUsage], ["m", 3, ["x"], true, true]);
  const param = (body: Record<string, unknown>) => {
    try {
      parseOpenAiCommon(body, spec);
    } catch (e) {
      assert.ok(e instanceof ApiError && e.status === 400);
      return e.details.param;
    }
    assert.fail(`accepted ${JSON.stringify(body)}`);
  };
  assert.equal(param({ model: "" }), "model");
  assert.equal(param({ n: 2 }), "n");
  assert.equal(param({ logit_bias: { "1": 5 } }), "logit_bias");
  assert.equal(param({ stream_options: [] }), "stream_options");
  assert.equal(param({ max_tokens: 5000 }), "max_tokens");
  assert.equal(param({ max_completion_tokens: 0 }), "max_completion_tokens");
});
