import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { CHAT_DEFAULTS, parseChatRequest } from "./parse_chat_request.ts";

Deno.test("parseChatRequest: OpenAI defaults, text parts flattened, null assistant content", () => {
  const r = parseChatRequest({
    model: "m",
    messages: [
      { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] },
      { role: "assistant", content: null },
    ],
  });
  assert.equal(r.model, "m");
  assert.deepEqual(r.messages, [{ role: "user", content: "ab" }, { role: "assistant", content: "" }]);
  assert.deepEqual(r.params, CHAT_DEFAULTS);
  assert.equal(r.stream, false);
  assert.equal(r.includeUsage, false);
});

Deno.test("parseChatRequest: max_completion_tokens wins over max_tokens; stream options", () => {
  const r = parseChatRequest({
    messages: [{ role: "user", content: "x" }],
    max_tokens: 10,
    max_completion_tokens: 20,
    stream: true,
    stream_options: { include_usage: true },
    stop: ["a", "b"],
  });
  assert.equal(r.params.maxNewTokens, 20);
  assert.equal(r.stream, true);
  assert.equal(r.includeUsage, true);
  assert.deepEqual(r.stop, ["a", "b"]);
});

Deno.test("parseChatRequest rejects images and bad model values", () => {
  const bad = [
    { messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: "x" } }] }] },
    { model: 5, messages: [{ role: "user", content: "x" }] },
    { messages: "hi" },
  ];
  for (const body of bad) {
    assert.throws(() => parseChatRequest(body), (e) => e instanceof ApiError && e.status === 400);
  }
});
