/**
 * One generation as the API serves it: the generator's tokens cut at the token cap and at stop
 * strings (never leaking a stop string, lib/util/stop_strings.ts), with the emitted text, the token
 * count and the finish reason collected as it goes; plus the context fit of a prompt.
 * @module
 */
import { ApiError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { StopScanner } from "../util/stop_strings.ts";
import type { GenerationParams, Generator, PromptOptions } from "./types.ts";

export type FinishReason = "stop" | "length";

export interface Run {
  /** Emitted text pieces (stop strings removed). */
  readonly pieces: AsyncGenerator<string, void, void>;
  readonly state: { tokens: number; text: string; finishReason: FinishReason };
}

/** Starts a generation; nothing runs until `pieces` is iterated. */
export function startRun(
  generator: Generator,
  prompt: string,
  params: GenerationParams,
  stops: readonly string[],
  { signal, templated }: { signal: AbortSignal } & PromptOptions,
): Run {
  const state = { tokens: 0, text: "", finishReason: "stop" as FinishReason };
  async function* pieces(): AsyncGenerator<string, void, void> {
    const scanner = new StopScanner(stops);
    const it = generator.generate(prompt, params, { signal, templated })[Symbol.asyncIterator]();
    let exhausted = false;
    try {
      while (state.tokens < params.maxNewTokens) {
        if (signal.aborted) throw signal.reason;
        const r = await it.next();
        if (r.done) {
          exhausted = true;
          break;
        }
        state.tokens++;
        const out = scanner.push(r.value.text);
        if (out) {
          state.text += out;
          yield out;
        }
        if (scanner.stopped) {
          state.finishReason = "stop";
          return;
        }
      }
      if (signal.aborted) throw signal.reason;
      state.finishReason = !exhausted && state.tokens >= params.maxNewTokens ? "length" : "stop";
      const rest = scanner.flush();
      if (rest) {
        state.text += rest;
        yield rest;
      }
    } finally {
      // Stop the generator when we end first (stop string, token cap, abort, client gone).
      if (!exhausted) await Promise.resolve(it.return?.()).catch(() => {});
    }
  }
  return { pieces: pieces(), state };
}

/**
 * Awaits the first emitted piece before the response status is committed, so that a generation
 * that fails at once (no route through the swarm, timeout) gets a proper HTTP error status.
 * Returns null when the generation ended without any text; calls `release` when it throws.
 */
export async function firstPiece(run: Run, release: () => void): Promise<string | null> {
  try {
    const r = await run.pieces.next();
    return r.done ? null : r.value;
  } catch (err) {
    release();
    throw err;
  }
}

/** Runs a non-streamed generation to its end (the text collects in `run.state`), then calls `release`. */
export async function completeRun(run: Run, release: () => void): Promise<void> {
  try {
    for await (const _ of run.pieces) { /* collected in state */ }
  } finally {
    release();
  }
}

/**
 * Characters per token beyond which a prompt is first counted by a prefix: a prompt of more
 * characters than the context times this is most likely too long, and tokenizing all of it (a
 * second per megabyte, on the event loop) would be the cost of finding out.
 */
export const PROBE_CHARS_PER_TOKEN = 16;
/** Tokens a prefix may count beyond the whole text's (its last word cut in pieces). */
const PREFIX_SLACK = 16;

/**
 * Counts the prompt's tokens and caps max new tokens to the context left after it; 400 when the
 * prompt alone does not fit. A very long prompt is counted by a prefix first: one whose prefix
 * alone is past the context is refused without tokenizing the rest.
 */
export function fitContext(
  generator: Generator,
  prompt: string,
  params: GenerationParams,
  field: string,
  log: Logger,
  options: PromptOptions = {},
): { params: GenerationParams; promptTokens: number } {
  const max = generator.info().maxContextTokens;
  if (max && prompt.length > max * PROBE_CHARS_PER_TOKEN) {
    const least = generator.countTokens(prompt.slice(0, max * PROBE_CHARS_PER_TOKEN), options) - PREFIX_SLACK;
    if (least >= max) throw tooLong(`at least ${least}`, least, max);
  }
  const n = generator.countTokens(prompt, options);
  if (!max) return { params, promptTokens: n };
  if (n >= max) throw tooLong(String(n), n, max);
  if (n + params.maxNewTokens <= max) return { params, promptTokens: n };
  log.debug("max new tokens capped by the context", { field, asked: params.maxNewTokens, cap: max - n });
  return { params: { ...params, maxNewTokens: max - n }, promptTokens: n };
}

function tooLong(count: string, n: number, max: number): ApiError {
  return new ApiError(
    400,
    "PROMPT_TOO_LONG",
    `the prompt is ${count} tokens; the model's maximum context length is ${max} tokens`,
    {
      hint: "send a shorter prompt",
      details: { promptTokens: n, maxContextTokens: max },
    },
  );
}
