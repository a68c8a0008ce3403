import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { GENERATE_DEFAULTS, parseGenerateRequest } from "./parse_generate_request.ts";

Deno.test("parseGenerateRequest applies the gateway API's defaults and ignores unknown fields", () => {
  const r = parseGenerateRequest({ inputs: "Hi", messages: [{ role: "wizard" }], extra: 1 });
  assert.deepEqual(r, { inputs: "Hi", params: GENERATE_DEFAULTS, stop: [], stream: false });
  // valid chat turns beside inputs are kept (the API renders them with the chat template)
  const m = parseGenerateRequest({ inputs: "Hi", messages: [{ role: "user" }] });
  assert.deepEqual(m.messages, [{ role: "user", content: "" }]);
  assert.equal(parseGenerateRequest({ messages: [{ role: "user", content: "x" }] }).inputs, undefined);
  assert.deepEqual(GENERATE_DEFAULTS, {
    maxNewTokens: 128,
    temperature: 0.7,
    topP: 0.9,
    repetitionPenalty: 1.2,
    doSample: true,
  });
});

Deno.test("parseGenerateRequest accepts the range ends and null as default", () => {
  const r = parseGenerateRequest({
    inputs: "x",
    parameters: {
      max_new_tokens: 4096,
      temperature: 0,
      top_p: 1,
      repetition_penalty: 2,
      do_sample: false,
      stop: "##",
    },
    stream: true,
  });
  assert.deepEqual(r.params, {
    maxNewTokens: 4096,
    temperature: 0,
    topP: 1,
    repetitionPenalty: 2,
    doSample: false,
  });
  assert.deepEqual(r.stop, ["##"]);
  assert.equal(r.stream, true);
  assert.equal(
    parseGenerateRequest({ inputs: "x", parameters: { temperature: null } }).params.temperature,
    0.7,
  );
});

Deno.test("parseGenerateRequest rejects out-of-range values with ApiError 400 naming the parameter", () => {
  for (
    const [k, v] of [["max_new_tokens", 4097], ["temperature", 2.01], ["top_p", -0.1], [
      "repetition_penalty",
      2.5,
    ]]
  ) {
    const err = (() => {
      try {
        parseGenerateRequest({ inputs: "x", parameters: { [k]: v } });
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof ApiError, String(k));
    assert.equal(err.status, 400);
    assert.equal(err.details.param, `parameters.${k}`);
    assert.ok(err.message.includes(String(v)));
  }
});
