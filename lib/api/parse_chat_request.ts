/**
 * Parses and validates an OpenAI `POST /v1/chat/completions` body:
 * `{model?, messages, max_tokens | max_completion_tokens, temperature, top_p, stop, stream,
 * stream_options: {include_usage}, n, seed, tools, tool_choice, repetition_penalty and
 * chat_template_kwargs (extensions, as vLLM names them: e.g. `{"enable_thinking": false}` for
 * Qwen3)}`; messages keep their `tool_calls` and `tool_call_id`. Fields this node cannot honour
 * and that would change the answer (`logprobs`, `response_format`, penalties, `logit_bias`)
 * are refused with a 400 naming them unless they ask for nothing (`UNSUPPORTED`); other unknown fields
 * are ignored.
 * OpenAI's defaults apply (temperature 1, top_p 1, no repetition penalty); the token cap is
 * the gateway API's 1..4096 (docs/protocol.md) (default 128 here too).
 * @module
 */
import { ApiError } from "../errors.ts";
import { invalid, OPENAI_UNSUPPORTED, show, type UnsupportedFields } from "./_params.ts";
import { type OpenAiCommon, parseOpenAiCommon } from "./openai_request.ts";
import { parseToolCalls, parseTools, type ToolSpec } from "./tool_calls.ts";
import type { ChatMessage, GenerationParams } from "./types.ts";

export interface ChatRequest extends OpenAiCommon {
  readonly messages: readonly ChatMessage[];
  /** Tools offered to the model (`tools`; none under `tool_choice: "none"`). */
  readonly tools?: readonly ToolSpec[];
  /** Extra variables for the chat template (`chat_template_kwargs`), e.g. `enable_thinking`. */
  readonly templateKwargs?: Readonly<Record<string, string | number | boolean | null>>;
}

export const CHAT_DEFAULTS: GenerationParams = Object.freeze({
  maxNewTokens: 128,
  temperature: 1,
  topP: 1,
  repetitionPenalty: 1,
  doSample: true,
});

const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);
const MAX_MESSAGES = 1024;
const MAX_TEMPLATE_KWARGS = 16;
const TEMPLATE_KWARG_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Template variables the API sets itself. */
const RESERVED_KWARGS = new Set(["messages", "add_generation_prompt"]);

export function parseChatRequest(body: Record<string, unknown>): ChatRequest {
  const messages = parseMessages(body.messages, { contentRequired: true });
  const common = parseOpenAiCommon(body, {
    defaults: CHAT_DEFAULTS,
    unsupported: CHAT_UNSUPPORTED,
    maxFields: ["max_completion_tokens", "max_tokens"],
    single: ["n"],
  });
  const tools = parseTools(body.tools, body.tool_choice);
  return {
    ...common,
    messages,
    templateKwargs: parseTemplateKwargs(body.chat_template_kwargs),
    ...(tools ? { tools } : {}),
  };
}

/** What chat requests may not ask for (`refuseUnsupported`), with the values that ask for nothing. */
const CHAT_UNSUPPORTED: UnsupportedFields = {
  ...OPENAI_UNSUPPORTED,
  functions: {
    idle: (v) => Array.isArray(v) && v.length === 0,
    hint: "send them as tools (OpenAI's newer form)",
  },
  function_call: { idle: (v) => v === "none", hint: "send tools and tool_choice (OpenAI's newer form)" },
  logprobs: { idle: (v) => v === false, hint: "this node returns no log probabilities; leave logprobs out" },
  top_logprobs: { idle: (v) => v === 0, hint: "this node returns no log probabilities" },
  response_format: {
    idle: (v) => typeof v === "object" && v !== null && (v as { type?: unknown }).type === "text",
    hint: 'this node cannot constrain the output to JSON; leave response_format out (or {"type": "text"})',
  },
};

/** `chat_template_kwargs`: a few named scalars (strings, numbers, booleans, null). */
function parseTemplateKwargs(value: unknown): Record<string, string | number | boolean | null> | undefined {
  if (value === undefined || value === null) return undefined;
  const field = "chat_template_kwargs";
  if (typeof value !== "object" || Array.isArray(value)) {
    throw invalid(field, "an object", value, 'e.g. {"enable_thinking": false}');
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > MAX_TEMPLATE_KWARGS) {
    throw invalid(field, `an object of at most ${MAX_TEMPLATE_KWARGS} entries`, value);
  }
  for (const [k, v] of entries) {
    if (!TEMPLATE_KWARG_NAME.test(k) || RESERVED_KWARGS.has(k)) {
      throw invalid(
        `${field} key ${JSON.stringify(k)}`,
        "an identifier other than messages and add_generation_prompt",
        k,
        'e.g. {"enable_thinking": false}',
      );
    }
    if (!(v === null || ["string", "number", "boolean"].includes(typeof v))) {
      throw invalid(`${field}.${k}`, "a string, number, boolean or null", v);
    }
  }
  return Object.fromEntries(entries) as Record<string, string | number | boolean | null>;
}

/**
 * Validates OpenAI-style chat messages (also the gateway's `messages` beside `inputs`, which may
 * leave out content); `contentRequired`: OpenAI's rule, content may be null in an assistant turn only.
 */
export function parseMessages(value: unknown, { contentRequired = false } = {}): ChatMessage[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_MESSAGES) {
    throw new ApiError(
      400,
      "INVALID_PARAMETER",
      `messages must be a non-empty array of at most ${MAX_MESSAGES} messages, got ${show(value)}`,
      { hint: 'send {"messages": [{"role": "user", "content": "Hello"}]}', details: { param: "messages" } },
    );
  }
  return value.map((m, i) => {
    const field = `messages[${i}]`;
    if (m === null || typeof m !== "object" || Array.isArray(m)) throw invalid(field, "an object", m);
    const { role, content, name, tool_calls, tool_call_id, function_call } = m as Record<string, unknown>;
    if (typeof role !== "string" || !ROLES.has(role)) {
      throw invalid(`${field}.role`, `one of ${[...ROLES].join(", ")}`, role);
    }
    if (function_call !== undefined && function_call !== null) {
      // the legacy form would be dropped from the prompt
      throw new ApiError(400, "UNSUPPORTED", `${field}.function_call is not supported by this node`, {
        hint: "send the call as tool_calls (OpenAI's newer form)",
        details: { param: `${field}.function_call` },
      });
    }
    const calls = parseToolCalls(`${field}.tool_calls`, tool_calls);
    return {
      role,
      content: flattenContent(`${field}.content`, content, role === "assistant" || !contentRequired),
      ...(typeof name === "string" ? { name } : {}),
      ...(calls ? { tool_calls: calls } : {}),
      ...(typeof tool_call_id === "string" ? { tool_call_id } : {}),
    };
  });
}

/** A string, null (assistant turns), or an array of `{type: "text", text}` parts. */
function flattenContent(field: string, content: unknown, mayBeEmpty: boolean): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) {
    // only an assistant turn (one that called tools) may come without content, as OpenAI has it
    if (mayBeEmpty) return "";
    throw invalid(field, "a string or an array of text parts (null only in an assistant turn)", content);
  }
  if (Array.isArray(content)) {
    return content.map((part, j) => {
      const p = part as Record<string, unknown> | null;
      if (p === null || typeof p !== "object" || p.type !== "text" || typeof p.text !== "string") {
        throw invalid(
          `${field}[${j}]`,
          'a text part {"type": "text", "text": "..."}',
          part,
          "this node serves text only",
        );
      }
      return p.text;
    }).join("");
  }
  throw invalid(field, "a string or an array of text parts", content);
}
