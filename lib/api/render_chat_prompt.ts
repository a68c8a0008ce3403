/**
 * Turns chat messages into one prompt string: with the checkpoint's Jinja chat template
 * (tokenizer_config.json `chat_template`) when it has one, else a plain "Role: text" fallback that
 * ends with "Assistant:". Templates are parsed once and cached.
 * @module
 */
import { Environment, Interpreter, Template } from "@huggingface/jinja";
import { ApiError } from "../errors.ts";
import type { ChatMessage } from "./types.ts";

export interface ChatTemplateSource {
  readonly chatTemplate?: string;
  readonly specialTokens?: Readonly<Record<string, string>>;
}

const cache = new Map<string, Template>();

function compile(source: string): Template {
  let t = cache.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (cause) {
      throw new ApiError(
        500,
        "CHAT_TEMPLATE_INVALID",
        `the checkpoint's chat template does not parse: ${msg(cause)}`,
        {
          hint: "fix chat_template in tokenizer_config.json, or remove it to use the plain fallback",
          cause,
        },
      );
    }
    if (cache.size > 8) cache.clear();
    cache.set(source, t);
  }
  return t;
}

/** The plain fallback used when the checkpoint has no chat template. */
export function plainChatPrompt(messages: readonly ChatMessage[]): string {
  const label = (role: string) => role === "developer" ? "System" : role[0].toUpperCase() + role.slice(1);
  return messages.map((m) => `${label(m.role)}: ${m.content}\n`).join("") + "Assistant:";
}

/**
 * An earlier tool call as templates take it: OpenAI sends `arguments` as a JSON string, and most
 * templates (Qwen2.5's, Hermes', Llama 3.1's) write `arguments | tojson`, which would encode the
 * string once more; an object is written as the model wrote it (Qwen3's takes either).
 */
function forTemplate(call: NonNullable<ChatMessage["tool_calls"]>[number]): Record<string, unknown> {
  let args: unknown = call.function.arguments;
  try {
    const parsed = JSON.parse(call.function.arguments);
    if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) args = parsed;
  } catch {
    // not JSON: passed on as it is
  }
  return { ...call, function: { ...call.function, arguments: args } };
}

/** What the last render charged to the size budget (for tests and benchmarks). */
export function lastRenderSize(): number {
  return MAX_TEMPLATE_SIZE - sizeLeft;
}

/**
 * Renders `messages` into a prompt that asks the model for the assistant's next turn.
 * `templateKwargs` are extra template variables (e.g. Qwen3's `enable_thinking`).
 */
export function renderChatPrompt(
  messages: readonly ChatMessage[],
  source: ChatTemplateSource,
  templateKwargs: Readonly<Record<string, unknown>> = {},
): string {
  if (!source.chatTemplate) return plainChatPrompt(messages);
  const template = compile(source.chatTemplate);
  const developerIsSystem = !source.chatTemplate.includes("developer");
  const tokens = source.specialTokens ?? {};
  rangeLeft = MAX_TEMPLATE_RANGE; // renders are synchronous: one at a time
  stepsLeft = MAX_TEMPLATE_STEPS;
  sizeLeft = MAX_TEMPLATE_SIZE;
  charged = new WeakSet();
  try {
    return template.render({
      bos_token: "",
      eos_token: "",
      unk_token: "",
      pad_token: "",
      ...tokens,
      ...templateKwargs,
      // OpenAI's `developer` is the system prompt of newer clients: a template that does not
      // know the role (Qwen3's, Llama's) would drop the message without a word
      messages: messages.map((m) => ({
        ...m,
        ...(developerIsSystem && m.role === "developer" ? { role: "system" } : {}),
        ...(m.tool_calls ? { tool_calls: m.tool_calls.map(forTemplate) } : {}),
      })),
      add_generation_prompt: true,
    });
  } catch (cause) {
    // Templates reject bad conversations themselves (raise_exception), e.g. roles not alternating.
    throw new ApiError(
      400,
      "CHAT_TEMPLATE_REJECTED",
      `the model's chat template rejected these messages: ${msg(cause)}`,
      {
        hint: "check the order and roles of messages (many templates want user/assistant turns alternating)",
        cause,
      },
    );
  }
}

/**
 * The most items a template's `range()` calls make in one render, together (nested loops multiply):
 * chat templates loop over messages, not millions.
 */
export const MAX_TEMPLATE_RANGE = 10_000;
/** What the render under way may still ask of `range()` (reset by `renderChatPrompt`). */
let rangeLeft = MAX_TEMPLATE_RANGE;
/**
 * The most template nodes one render evaluates (a loop's body counts at every pass): a long
 * conversation through a real template takes tens of thousands; nested loops over one list, which
 * `range()`'s budget does not see, stop here (a fraction of a second of the event loop).
 */
export const MAX_TEMPLATE_STEPS = 500_000;
let stepsLeft = MAX_TEMPLATE_STEPS;
/**
 * The most the values one render makes may hold together, each counted when it is made: a
 * character is 1, a list item or dict entry 8 (a pointer at least). A loop that doubles a string or
 * a list runs out here after a few dozen steps, long before the step budget would stop it (a
 * doubled list took 7 s and 1.9 GB before). A value read again (a variable, a message's content) is
 * not made again and counts once. A render of the largest body the API takes (a megabyte) through
 * Qwen3's template counts a few times its size.
 */
export const MAX_TEMPLATE_SIZE = 64 * 1024 * 1024;
let sizeLeft = MAX_TEMPLATE_SIZE;

/** The values charged in the render under way: a variable read again returns the same one. */
let charged = new WeakSet<object>();

/** Takes what `value` holds from the render's size budget, once per value. */
function charge(value: unknown): void {
  if (typeof value !== "object" || value === null || charged.has(value)) return;
  charged.add(value);
  const v = (value as { value?: unknown }).value;
  const held = typeof v === "string"
    ? v.length
    : Array.isArray(v)
    ? 8 * v.length
    : v instanceof Map
    ? 8 * v.size
    : 0;
  sizeLeft -= held;
  if (sizeLeft < 0) {
    throw new Error(
      `the template made values of more than ${MAX_TEMPLATE_SIZE} bytes in all for these messages`,
    );
  }
}

/**
 * Jinja's `range` (start, stop, step as Python's), refusing more than `MAX_TEMPLATE_RANGE` items: the
 * library's own builds any list asked for, and `range(10000000)` in a checkpoint's template ran the
 * process out of memory on the first chat request.
 */
function boundedRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error("range() step must not be zero");
  const n = Math.max(0, Math.ceil((stop - start) / step));
  if (!(n <= rangeLeft)) {
    throw new Error(
      `range() of ${n} items, past the ${MAX_TEMPLATE_RANGE} a chat template's loops may take in all`,
    );
  }
  rangeLeft -= n;
  return Array.from({ length: n }, (_, i) => start + i * step);
}

// The library declares its globals through Environment#set and offers no way to replace one (a
// variable of the same name is refused): its `range` becomes the bounded one where it is declared.
const declare = Environment.prototype.set;
Environment.prototype.set = function (this: Environment, name: string, value: unknown) {
  return declare.call(this, name, name === "range" && typeof value === "function" ? boundedRange : value);
};

// Every node the interpreter evaluates goes through `evaluate`, every pass of a loop's body (even an
// empty one) through `evaluateBlock`: each takes a step of the budget.
const step = () => {
  if (--stepsLeft < 0) {
    throw new Error(`the template took more than ${MAX_TEMPLATE_STEPS} steps for these messages`);
  }
};
const evaluate = Interpreter.prototype.evaluate;
Interpreter.prototype.evaluate = function (this: Interpreter, ...args: Parameters<typeof evaluate>) {
  step();
  const value = evaluate.apply(this, args);
  charge(value);
  return value;
};
// (private in the library's types, public at run time)
const proto = Interpreter.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
const evaluateBlock = proto.evaluateBlock;
proto.evaluateBlock = function (this: unknown, ...args: unknown[]) {
  step();
  const value = evaluateBlock.apply(this, args);
  charge(value);
  return value;
};

function msg(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
