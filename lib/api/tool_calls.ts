/**
 * OpenAI tool calling over a chat template that supports tools (Qwen3's, Qwen2.5's, Hermes'): the
 * request's `tools` go to the template, which lists them in the prompt and asks the model to answer
 * a call as `<tool_call>{"name": …, "arguments": {…}}</tool_call>`; the reply's text is scanned for
 * those blocks and each becomes a `tool_calls` entry (`finish_reason: "tool_calls"`). A block that
 * is not such JSON stays text. Streams hold text back from the first `<tool_call>` on, so a call
 * never leaks as content. The model is asked, not forced: `tool_choice` "required" or a named
 * function cannot be guaranteed and is refused.
 * @module
 */
import { ApiError } from "../errors.ts";
import { invalid, show } from "./_params.ts";

/** One tool as the request gives it (OpenAI's shape, passed on to the template as it is). */
export interface ToolSpec {
  readonly type: "function";
  readonly function: { readonly name: string; readonly description?: string; readonly parameters?: unknown };
}

/** A call the model made, in OpenAI's shape. */
export interface ToolCall {
  readonly id: string;
  readonly type: "function";
  readonly function: { readonly name: string; readonly arguments: string };
}

const MAX_TOOLS = 128;
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const OPEN = "<tool_call>";
const CLOSE = "</tool_call>";

/**
 * `tools` and `tool_choice`: the tools to offer, or undefined where none are (absent, empty, or
 * `tool_choice: "none"`).
 */
export function parseTools(tools: unknown, toolChoice: unknown): ToolSpec[] | undefined {
  if (toolChoice !== undefined && toolChoice !== null && toolChoice !== "auto" && toolChoice !== "none") {
    throw new ApiError(400, "UNSUPPORTED", `tool_choice ${show(toolChoice)} is not supported by this node`, {
      hint: 'the model is asked to call tools, never forced: use "auto" (or leave tool_choice out)',
      details: { param: "tool_choice" },
    });
  }
  if (tools === undefined || tools === null || toolChoice === "none") return undefined;
  if (!Array.isArray(tools) || tools.length > MAX_TOOLS) {
    throw invalid("tools", `an array of at most ${MAX_TOOLS} tools`, tools);
  }
  if (tools.length === 0) return undefined;
  return tools.map((t, i) => {
    const field = `tools[${i}]`;
    const f = (t as { function?: unknown } | null)?.function as Record<string, unknown> | undefined;
    if ((t as { type?: unknown } | null)?.type !== "function" || typeof f !== "object" || f === null) {
      throw invalid(field, '{"type": "function", "function": {"name", "description", "parameters"}}', t);
    }
    if (typeof f.name !== "string" || !TOOL_NAME.test(f.name)) {
      throw invalid(`${field}.function.name`, "1 to 64 letters, digits, _ . -", f.name);
    }
    if (f.description !== undefined && typeof f.description !== "string") {
      throw invalid(`${field}.function.description`, "a string", f.description);
    }
    if (f.parameters !== undefined && (typeof f.parameters !== "object" || f.parameters === null)) {
      throw invalid(`${field}.function.parameters`, "a JSON Schema object", f.parameters);
    }
    return t as ToolSpec;
  });
}

/** An assistant turn's `tool_calls`, checked and kept for the template. */
export function parseToolCalls(field: string, value: unknown): ToolCall[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.length > MAX_TOOLS) {
    throw invalid(field, `an array of at most ${MAX_TOOLS} tool calls`, value);
  }
  if (value.length === 0) return undefined;
  return value.map((c, i) => {
    const f = (c as { function?: Record<string, unknown> } | null)?.function;
    if (
      typeof c !== "object" || c === null || typeof f !== "object" || f === null ||
      typeof f.name !== "string" ||
      typeof f.arguments !== "string"
    ) {
      throw invalid(
        `${field}[${i}]`,
        '{"id", "type": "function", "function": {"name", "arguments": "<json>"}}',
        c,
      );
    }
    const id = (c as { id?: unknown }).id;
    return {
      id: typeof id === "string" ? id : "",
      type: "function",
      function: { name: f.name, arguments: f.arguments },
    };
  });
}

/**
 * The tool calls written in `text` and the text around them. A `<tool_call>` whose block does not
 * parse (the tag named in the model's thinking, a garbled call) stays text, and the search goes on
 * after it; with no call the text comes back as it is.
 */
export function extractToolCalls(
  text: string,
  newId: () => string = callId,
): { content: string; calls: ToolCall[] } {
  const calls: ToolCall[] = [];
  let content = "";
  let at = 0; // text before `at` is in `content` or a call
  for (let open = text.indexOf(OPEN); open >= 0;) {
    const close = text.indexOf(CLOSE, open + OPEN.length);
    if (close < 0) break;
    const call = parseCall(text.slice(open + OPEN.length, close), newId);
    if (!call) {
      open = text.indexOf(OPEN, open + OPEN.length);
      continue;
    }
    content += text.slice(at, open);
    calls.push(call);
    at = close + CLOSE.length;
    open = text.indexOf(OPEN, at);
  }
  return { content: calls.length ? (content + text.slice(at)).trim() : text, calls };
}

function parseCall(body: string, newId: () => string): ToolCall | undefined {
  let v: unknown;
  try {
    v = JSON.parse(body);
  } catch {
    return undefined;
  }
  const o = v as { name?: unknown; arguments?: unknown } | null;
  if (typeof o !== "object" || o === null || typeof o.name !== "string" || o.name.length === 0) {
    return undefined;
  }
  const args = o.arguments ?? {};
  return {
    id: newId(),
    type: "function",
    function: { name: o.name, arguments: typeof args === "string" ? args : JSON.stringify(args) },
  };
}

function callId(): string {
  return `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
}

/**
 * A stream's text, with everything from the first `<tool_call>` on held back (and the end of a
 * piece that may begin one) until the text is complete.
 */
export class ToolCallScanner {
  #held = "";
  #calling = false;

  /** The text to send now for `piece`. */
  push(piece: string): string {
    if (this.#calling) {
      this.#held += piece;
      return "";
    }
    const text = this.#held + piece;
    const open = text.indexOf(OPEN);
    if (open >= 0) {
      this.#calling = true;
      this.#held = text.slice(open);
      return text.slice(0, open);
    }
    // keep back a tail that may be the start of `<tool_call>`
    let keep = Math.min(OPEN.length - 1, text.length);
    while (keep > 0 && !OPEN.startsWith(text.slice(text.length - keep))) keep--;
    this.#held = text.slice(text.length - keep);
    return text.slice(0, text.length - keep);
  }

  /** Once the text is complete: the calls in what was held back, and the text still to send. */
  finish(newId?: () => string): { content: string; calls: ToolCall[] } {
    const held = this.#held;
    this.#held = "";
    if (!this.#calling) return { content: held, calls: [] };
    const r = extractToolCalls(held, newId);
    return r.calls.length ? r : { content: held, calls: [] };
  }
}
