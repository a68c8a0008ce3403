import assert from "node:assert/strict";
import { QWEN3_CHAT_TEMPLATE } from "../../tests/helpers/tokenizer_fixture.ts";
import { FakeGenerator, readSse } from "../testing/mod.ts";
import { Metrics } from "../util/metrics.ts";
import { ApiHandler } from "./api_handler.ts";
import { extractToolCalls, ToolCallScanner } from "./tool_calls.ts";

const ids = () => {
  let n = 0;
  return () => `call_${++n}`;
};

Deno.test("extractToolCalls: each <tool_call> block becomes a call; text around them stays; bad blocks stay text", () => {
  const text =
    'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n' +
    '<tool_call>\n{"name": "get_time", "arguments": "{\\"tz\\": \\"CET\\"}"}\n</tool_call>';
  const r = extractToolCalls(text, ids());
  assert.equal(r.content, "Let me check.");
  assert.deepEqual(r.calls, [
    { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
    { id: "call_2", type: "function", function: { name: "get_time", arguments: '{"tz": "CET"}' } },
  ]);
  assert.deepEqual(extractToolCalls("no calls here").calls, []);
  for (
    const bad of [
      "<tool_call>\nnot json\n</tool_call>",
      '<tool_call>{"arguments": {}}</tool_call>', // no name
      '<tool_call>{"name": "f"}', // never closed
    ]
  ) {
    assert.deepEqual(extractToolCalls(bad), { content: bad, calls: [] }, bad);
  }
  // a block that does not parse stays text; the search goes on after it
  const mixed = '<tool_call>{"name": "f"}</tool_call> then <tool_call>oops</tool_call>';
  const m = extractToolCalls(mixed, ids());
  assert.deepEqual(m.calls.map((c) => c.function.name), ["f"]);
  assert.equal(m.content, "then <tool_call>oops</tool_call>");
  // the tag named in the thinking does not hide the call after it (before: no call at all)
  const thought = "<think>\nI should answer with a <tool_call> block.\n</think>\n\n" +
    '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
  const t = extractToolCalls(thought, ids());
  assert.deepEqual(t.calls.map((c) => c.function), [{ name: "get_weather", arguments: '{"city":"Paris"}' }]);
  assert.equal(t.content, "<think>\nI should answer with a <tool_call> block.\n</think>");
  // arguments left out are an empty object
  assert.equal(extractToolCalls('<tool_call>{"name": "f"}</tool_call>').calls[0].function.arguments, "{}");
});

Deno.test("ToolCallScanner: text before a call goes out at once; the call, even split mid-tag, never does", () => {
  const pieces = [
    "Sure",
    ". <to",
    "ol_c",
    'all>\n{"name": "f", "argu',
    'ments": {"x": 1}}\n</tool_',
    "call>",
  ];
  const s = new ToolCallScanner();
  const sent = pieces.map((p) => s.push(p));
  assert.deepEqual(sent, ["Sure", ". ", "", "", "", ""]);
  const end = s.finish(ids());
  assert.equal(end.content, "");
  assert.deepEqual(end.calls, [{
    id: "call_1",
    type: "function",
    function: { name: "f", arguments: '{"x":1}' },
  }]);
  // a "<" that turns out to be no call is sent once it is clear
  const t = new ToolCallScanner();
  assert.deepEqual(["a <", "b", " <tool", "s>"].map((p) => t.push(p)), ["a ", "<b", " ", "<tools>"]);
  assert.deepEqual(t.finish(), { content: "", calls: [] });
  // a block that does not parse comes out as text at the end
  const u = new ToolCallScanner();
  assert.equal(u.push("x <tool_call>oops"), "x ");
  assert.deepEqual(u.finish(), { content: "<tool_call>oops", calls: [] });
});

const tool = {
  type: "function",
  function: { name: "get_weather", description: "Weather of a city", parameters: { type: "object" } },
};
/** What Qwen3 writes for a call, token by token (the tag split as a tokenizer may split it). */
const CALL_SCRIPT = [
  "<tool_call>",
  '\n{"name": "get_weather", ',
  '"arguments": {"city": "Paris"}}',
  "\n</tool_call>",
];

function toolSetup(script: string[], chatTemplate = QWEN3_CHAT_TEMPLATE) {
  const gen = new FakeGenerator({
    script,
    info: { chatTemplate, specialTokens: { eos_token: "<|im_end|>" } },
  });
  const handler = new ApiHandler({ generator: gen, metrics: new Metrics() });
  const post = (body: Record<string, unknown>) =>
    handler.app.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [{ role: "user", content: "Weather in Paris?" }],
        tools: [tool],
        ...body,
      }),
    });
  return { gen, post };
}

Deno.test("chat with tools: the template lists them; a call comes back as tool_calls with finish_reason tool_calls", async () => {
  const { gen, post } = toolSetup(CALL_SCRIPT);
  const r = await post({});
  assert.equal(r.status, 200);
  const b = await r.json();
  assert.match(gen.calls[0].prompt, /<tools>\n\{"type": "function", "function": \{"name": "get_weather"/);
  assert.equal(b.choices[0].finish_reason, "tool_calls");
  assert.equal(b.choices[0].message.content, null);
  assert.equal(b.choices[0].message.tool_calls.length, 1);
  const call = b.choices[0].message.tool_calls[0];
  assert.match(call.id, /^call_/);
  assert.deepEqual([call.type, call.function], ["function", {
    name: "get_weather",
    arguments: '{"city":"Paris"}',
  }]);
  // the next turn, with the call and its answer, renders both for the model
  const next = await post({
    messages: [
      { role: "user", content: "Weather in Paris?" },
      { role: "assistant", content: null, tool_calls: [call] },
      { role: "tool", content: "sunny", tool_call_id: call.id },
    ],
  });
  assert.equal(next.status, 200);
  assert.match(
    gen.calls[1].prompt,
    /<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "Paris"\}\}\n<\/tool_call>/,
  );
  assert.match(gen.calls[1].prompt, /<tool_response>\nsunny\n<\/tool_response>/);
  // a plain answer stays a plain answer
  const plain = await (await toolSetup([" It", " is", " sunny."]).post({})).json();
  assert.deepEqual(plain.choices[0].message, { role: "assistant", content: " It is sunny." });
  assert.equal(plain.choices[0].finish_reason, "stop");
});

Deno.test("chat with tools, streamed: text deltas, then one tool_calls delta per call, no tag leaking", async () => {
  const { post } = toolSetup([" Checking.", ...CALL_SCRIPT]);
  const events = await readSse(await post({ stream: true }));
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  const deltas = chunks.map((c) => c.choices[0].delta);
  const text = deltas.map((d) => d.content ?? "").join("");
  assert.equal(text, " Checking.", "no part of the call is sent as content");
  const calls = deltas.filter((d) => d.tool_calls).map((d) => d.tool_calls[0]);
  assert.equal(calls.length, 1);
  assert.equal(calls[0].index, 0);
  assert.deepEqual(calls[0].function, { name: "get_weather", arguments: '{"city":"Paris"}' });
  assert.deepEqual(chunks.map((c) => c.choices[0].finish_reason).filter(Boolean), ["tool_calls"]);
});

Deno.test("chat with tools: a template without <tool_call> blocks is a 400; tool_choice none offers none", async () => {
  for (
    const chatTemplate of [
      "{% for m in messages %}{{ m.content }}{% endfor %}",
      // lists tools, but asks for calls in another form (Llama 3.1's JSON): they would come back as text
      '{% if tools %}{{ tools | tojson }}Respond in the format {"name": function name, "parameters": ...}{% endif %}',
    ]
  ) {
    const plain = toolSetup(CALL_SCRIPT, chatTemplate);
    const r = await plain.post({});
    assert.equal(r.status, 400);
    const e = (await r.json()).error;
    assert.equal(e.code, "unsupported");
    assert.equal(e.param, "tools");
    assert.match(e.message, /does not ask for <tool_call> blocks/);
    assert.equal(plain.gen.calls.length, 0);
  }
  const { gen, post } = toolSetup(CALL_SCRIPT);
  const none = await (await post({ tool_choice: "none" })).json();
  assert.doesNotMatch(gen.calls[0].prompt, /<tools>/);
  assert.equal(none.choices[0].finish_reason, "stop", "without tools the text is the answer");
});
