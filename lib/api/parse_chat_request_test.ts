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

Deno.test("parseChatRequest: seed is passed on; fields that would change the answer are refused, not ignored", () => {
  const user = [{ role: "user", content: "x" }];
  assert.equal(parseChatRequest({ messages: user, seed: 42 }).params.seed, 42);
  assert.equal(parseChatRequest({ messages: user }).params.seed, undefined);
  assert.throws(() => parseChatRequest({ messages: user, seed: 1.5 }), /seed must be an integer/);
  // before: each of these answered 200 as if it had not been sent
  const refused: Record<string, unknown> = {
    functions: [{ name: "f" }],
    function_call: "auto",
    logprobs: true,
    top_logprobs: 5,
    response_format: { type: "json_object" },
    presence_penalty: 2,
    frequency_penalty: -1,
    logit_bias: { "74": -100 },
  };
  for (const [field, value] of Object.entries(refused)) {
    assert.throws(
      () => parseChatRequest({ messages: user, [field]: value }),
      (e: unknown) =>
        e instanceof ApiError && e.status === 400 && e.code === "UNSUPPORTED" && e.details.param === field &&
        e.message.startsWith(`${field} is not supported`),
      field,
    );
  }
  // the values that ask for nothing pass, as clients send them by default
  const idle = {
    tools: [],
    tool_choice: "auto",
    logprobs: false,
    top_logprobs: 0,
    response_format: { type: "text" },
    presence_penalty: 0,
    frequency_penalty: 0,
    logit_bias: {},
    functions: null,
    user: "someone",
  };
  assert.equal(parseChatRequest({ messages: user, ...idle }).messages.length, 1);
  // the model is asked to call tools, never forced
  for (const choice of ["required", { type: "function", function: { name: "f" } }]) {
    assert.throws(
      () => parseChatRequest({ messages: user, tools: [], tool_choice: choice }),
      (e: unknown) => e instanceof ApiError && e.code === "UNSUPPORTED" && e.details.param === "tool_choice",
    );
  }
  // the legacy function_call of an earlier turn would vanish from the prompt
  assert.throws(
    () =>
      parseChatRequest({
        messages: [...user, { role: "assistant", content: null, function_call: { name: "f" } }],
      }),
    (e: unknown) =>
      e instanceof ApiError && e.code === "UNSUPPORTED" && e.details.param === "messages[1].function_call",
  );
});

Deno.test("parseChatRequest: tools are checked and kept, as are the tool calls and answers of earlier turns", () => {
  const tool = {
    type: "function",
    function: { name: "get_weather", description: "Weather of a city", parameters: { type: "object" } },
  };
  const r = parseChatRequest({
    messages: [
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [{
          id: "c1",
          type: "function",
          function: { name: "get_weather", arguments: '{"city":"Paris"}' },
        }],
      },
      { role: "tool", content: "sunny", tool_call_id: "c1" },
    ],
    tools: [tool],
    tool_choice: "auto",
  });
  assert.deepEqual(r.tools, [tool]);
  assert.deepEqual(r.messages[1].tool_calls, [
    { id: "c1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
  ]);
  assert.equal(r.messages[2].tool_call_id, "c1");
  // tool_choice none offers none
  assert.equal(
    parseChatRequest({ messages: r.messages, tools: [tool], tool_choice: "none" }).tools,
    undefined,
  );
  for (
    const [tools, param] of [
      [[{ type: "function" }], "tools[0]"],
      [[{ type: "function", function: { name: "bad name!" } }], "tools[0].function.name"],
      [[{ type: "function", function: { name: "f", parameters: "x" } }], "tools[0].function.parameters"],
      ["f", "tools"],
    ] as const
  ) {
    assert.throws(
      () => parseChatRequest({ messages: [{ role: "user", content: "x" }], tools }),
      (e: unknown) => e instanceof ApiError && e.status === 400 && e.details.param === param,
      param,
    );
  }
});

Deno.test("parseChatRequest: content may be null in an assistant turn only, as OpenAI has it", () => {
  assert.equal(
    parseChatRequest({ messages: [{ role: "user", content: "x" }, { role: "assistant", content: null }] })
      .messages[1]
      .content,
    "",
  );
  for (const role of ["user", "system", "developer", "tool"]) {
    // before: accepted, as an empty message
    assert.throws(
      () => parseChatRequest({ messages: [{ role, content: null }] }),
      (e: unknown) => e instanceof ApiError && e.status === 400 && e.details.param === "messages[0].content",
      role,
    );
  }
});
