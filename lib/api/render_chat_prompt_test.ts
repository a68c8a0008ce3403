import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import {
  lastRenderSize,
  MAX_TEMPLATE_SIZE,
  plainChatPrompt,
  renderChatPrompt,
} from "./render_chat_prompt.ts";
import { QWEN3_CHAT_TEMPLATE } from "../../tests/helpers/tokenizer_fixture.ts";

const msgs = [
  { role: "system", content: "Be nice." },
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello!" },
  { role: "user", content: "Bye" },
];

Deno.test("plain fallback: Role: text lines ending with Assistant:", () => {
  assert.equal(
    plainChatPrompt(msgs),
    "System: Be nice.\nUser: Hi\nAssistant: Hello!\nUser: Bye\nAssistant:",
  );
  assert.equal(renderChatPrompt(msgs, {}), plainChatPrompt(msgs));
});

Deno.test("a ChatML-style checkpoint template renders with the generation prompt", () => {
  const chatTemplate =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  assert.equal(
    renderChatPrompt(msgs.slice(1, 2), { chatTemplate }),
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
});

Deno.test("a Llama-2-style template gets bos/eos tokens and its raise_exception becomes a 400", () => {
  const chatTemplate =
    "{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";
  const tokens = { bos_token: "<s>", eos_token: "</s>" };
  assert.equal(
    renderChatPrompt(msgs.slice(1), { chatTemplate, specialTokens: tokens }),
    "<s>[INST] Hi [/INST] Hello! </s><s>[INST] Bye [/INST]",
  );
  const err = (() => {
    try {
      renderChatPrompt([{ role: "assistant", content: "x" }], { chatTemplate, specialTokens: tokens });
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 400);
  assert.match(err.message, /roles must alternate/);
});

Deno.test("a template that does not parse is a 500 naming the checkpoint's template", () => {
  const err = (() => {
    try {
      renderChatPrompt(msgs, { chatTemplate: "{% for m in messages %}" });
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 500);
  assert.equal(err.code, "CHAT_TEMPLATE_INVALID");
});

Deno.test("Qwen3's published template: ChatML turns, earlier thinking dropped, enable_thinking, tools", () => {
  const chatTemplate = QWEN3_CHAT_TEMPLATE;
  assert.equal(
    renderChatPrompt([{ role: "user", content: "Hi" }], { chatTemplate }),
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
  );
  const turns = [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "<think>\nThe user greets me.\n</think>\n\nHello!" },
    { role: "user", content: "2+2?" },
  ];
  // an earlier assistant turn keeps its answer only (its <think> block is dropped)
  assert.equal(
    renderChatPrompt(turns, { chatTemplate }),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
      "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n",
  );
  // enable_thinking: false pre-fills an empty thinking block; true (or absent) lets the model think
  assert.equal(
    renderChatPrompt(turns.slice(3), { chatTemplate }, { enable_thinking: false }),
    "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
  );
  assert.equal(
    renderChatPrompt(turns.slice(3), { chatTemplate }, { enable_thinking: true }),
    renderChatPrompt(turns.slice(3), { chatTemplate }),
  );
  // tool results are wrapped in <tool_response> inside a user turn
  assert.equal(
    renderChatPrompt([
      { role: "user", content: "Weather?" },
      { role: "assistant", content: "Let me look." },
      { role: "tool", content: "sunny" },
    ], { chatTemplate }),
    "<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\nLet me look.<|im_end|>\n" +
      "<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
  );
});

Deno.test("renderChatPrompt: a template's range() is Python's, up to 10 000 items; beyond, the request is refused", () => {
  const msgs = [{ role: "user" as const, content: "hi" }];
  const t = (body: string) => ({ chatTemplate: body });
  assert.equal(renderChatPrompt(msgs, t("{% for i in range(3) %}{{ i }}{% endfor %}")), "012");
  assert.equal(renderChatPrompt(msgs, t("{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}")), "135");
  assert.equal(renderChatPrompt(msgs, t("{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}")), "321");
  assert.equal(renderChatPrompt(msgs, t("{{ range(10000) | length }}")), "10000");
  // before: the whole process ran out of memory on this one request
  assert.throws(
    () => renderChatPrompt(msgs, t("{% for i in range(10000000) %}{{ i }}{% endfor %}")),
    (e: unknown) =>
      e instanceof ApiError && e.status === 400 && /range\(\) of 10000000 items/.test(e.message),
  );
  // nested loops count together: 10 000 × 1 000 was 7 s of a blocked event loop per request
  assert.throws(
    () =>
      renderChatPrompt(
        msgs,
        t("{% for i in range(10000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"),
      ),
    (e: unknown) => e instanceof ApiError && e.status === 400 && /in all/.test(e.message),
  );
  // and the next render starts afresh
  assert.equal(renderChatPrompt(msgs, t("{{ range(10000) | length }}")), "10000");
  // nested loops over one list, which range()'s budget does not see, stop at the step budget
  assert.throws(
    () =>
      renderChatPrompt(
        msgs,
        t("{% set r = range(3000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}"),
      ),
    (e: unknown) => e instanceof ApiError && e.status === 400 && /more than 500000 steps/.test(e.message),
  );
});

Deno.test("renderChatPrompt: values a template makes are bounded in all; Qwen3's template at the API's body cap is not", () => {
  const msgs = [{ role: "user" as const, content: "hi" }];
  const t = (body: string) => ({ chatTemplate: body });
  // doubling a list 40 times: before, 7 s and 1.9 GB of memory for one request
  for (
    const doubled of [
      "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}",
      "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    ]
  ) {
    assert.throws(
      () => renderChatPrompt(msgs, t(doubled)),
      (e: unknown) =>
        e instanceof ApiError && e.status === 400 && e.code === "CHAT_TEMPLATE_REJECTED" &&
        new RegExp(`more than ${MAX_TEMPLATE_SIZE} bytes in all`).test(e.message),
    );
  }
  // twenty doublings are fine, and the next render starts afresh
  assert.equal(
    renderChatPrompt(
      msgs,
      t("{% set ns = namespace(l=[1]) %}{% for i in range(20) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}"),
    ),
    String(2 ** 20),
  );
  // a megabyte of conversation (the API's body cap) through Qwen3's template: reads of the same
  // message are not counted again, so it stays far inside the budget
  const big = [
    { role: "system" as const, content: "s".repeat(300_000) },
    ...Array.from({ length: 700 }, (_, i) => ({
      role: i % 2 ? "assistant" as const : "user" as const,
      content: i % 2 ? `<think>\n${"t".repeat(400)}\n</think>\n\n${"a".repeat(580)}` : "u".repeat(1000),
    })),
  ];
  const out = renderChatPrompt(big, { chatTemplate: QWEN3_CHAT_TEMPLATE });
  assert.ok(out.length > 700_000);
  assert.ok(lastRenderSize() < MAX_TEMPLATE_SIZE / 4, `charged ${lastRenderSize()}`);
});

Deno.test("renderChatPrompt: a developer message is the system prompt for a template without that role", () => {
  const chatTemplate = QWEN3_CHAT_TEMPLATE;
  const asSystem = renderChatPrompt([{ role: "system", content: "Talk like a pirate." }, {
    role: "user",
    content: "Hi",
  }], {
    chatTemplate,
  });
  // before: Qwen3's template rendered nothing of it
  assert.equal(
    renderChatPrompt(
      [{ role: "developer", content: "Talk like a pirate." }, { role: "user", content: "Hi" }],
      {
        chatTemplate,
      },
    ),
    asSystem,
  );
  assert.match(asSystem, /^<\|im_start\|>system\nTalk like a pirate\.<\|im_end\|>/);
  // a template that names the role gets it as it is
  const own = "{% for m in messages %}{{ m.role }}:{{ m.content }};{% endfor %}{# developer #}";
  assert.equal(
    renderChatPrompt([{ role: "developer", content: "d" }], { chatTemplate: own }),
    "developer:d;",
  );
});

Deno.test("renderChatPrompt: an earlier tool call's arguments reach the template as an object, not a string", () => {
  // Qwen2.5's (and Hermes', Llama 3.1's) way: `arguments | tojson`, which encoded OpenAI's JSON string twice
  const chatTemplate =
    "{% for m in messages %}{% for c in m.tool_calls or [] %}{{ c.function.arguments | tojson }};{% endfor %}{% endfor %}";
  const call = {
    id: "c1",
    type: "function" as const,
    function: { name: "f", arguments: '{"city": "Paris"}' },
  };
  assert.equal(
    renderChatPrompt([{ role: "assistant", content: "", tool_calls: [call] }], { chatTemplate }),
    '{"city": "Paris"};',
  );
  // arguments that are not a JSON object stay the string they are
  const odd = { ...call, function: { name: "f", arguments: "not json" } };
  assert.equal(
    renderChatPrompt([{ role: "assistant", content: "", tool_calls: [odd] }], { chatTemplate }),
    '"not json";',
  );
});
