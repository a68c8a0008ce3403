import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { COMPLETION_DEFAULTS, parseCompletionRequest } from "./parse_completion_request.ts";

Deno.test("parseCompletionRequest: OpenAI's defaults; a prompt of one string in an array; echo, stop, seed", () => {
  const r = parseCompletionRequest({ prompt: "Once" });
  assert.equal(r.prompt, "Once");
  assert.deepEqual(r.params, COMPLETION_DEFAULTS);
  assert.equal(r.params.maxNewTokens, 16, "OpenAI's default for text completions");
  assert.deepEqual([r.stream, r.echo, r.includeUsage, r.stop], [false, false, false, []]);
  const s = parseCompletionRequest({
    prompt: ["Twice"],
    echo: true,
    stop: ["\n"],
    seed: -3,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 7,
    user: "ignored",
  });
  assert.deepEqual([s.prompt, s.echo, s.stop, s.params.seed, s.stream, s.includeUsage], [
    "Twice",
    true,
    ["\n"],
    -3,
    true,
    true,
  ]);
  assert.equal(s.params.maxNewTokens, 7);
  for (
    const bad of [{ prompt: "" }, { prompt: [] }, { prompt: "x", echo: "yes" }, {
      prompt: "x",
      temperature: 3,
    }]
  ) {
    assert.throws(
      () => parseCompletionRequest(bad),
      (e: unknown) => e instanceof ApiError && e.status === 400,
    );
  }
});
