/**
 * The generation loop: tokenizer → local embeddings → session steps (the prompt prefilled in
 * chunks, then one token per step) → local final norm + LM head → sampling → stop conditions,
 * yielding tokens as they come. Works over any step session: the multi-server swarm session or a
 * local runtime session (the single-process reference). A `ConversationState` carries the session
 * position across calls so a chat continues without recomputing its prefix.
 * @module
 */
import { ConfigError, SwarmError } from "../../errors.ts";
import type { ClientHead, Tokenizer } from "../../runtime/types.ts";
import { sliceTokens } from "./hidden_ops.ts";
import { IncrementalText } from "./incremental_text.ts";
import { StopCondition, type StopReason } from "./stop_condition.ts";
import { type SamplingOptions, TokenSampler } from "./token_sampler.ts";
import type { Hidden } from "./types.ts";

/** What the loop needs from a session (the swarm session and the runtime's session both fit). */
export interface StepSession {
  readonly position: number;
  readonly maxLength: number;
  step(hidden: Hidden, options?: { signal?: AbortSignal }): Promise<Hidden>;
}

export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens (≥ 1). */
  readonly maxNewTokens: number;
  readonly stopStrings?: readonly string[];
  /** Token ids that end generation (default: the tokenizer's EOS tokens). */
  readonly eosTokenIds?: readonly number[];
  /** Longest prefill step in tokens (default 512); longer prompts go in several steps. */
  readonly prefillChunkTokens?: number;
  readonly signal?: AbortSignal;
}

/** One generated token; the `text`s of a generation concatenate to its final text. */
export interface GeneratedToken {
  readonly tokenId: number;
  /** Text this token adds ("" while held back: an incomplete character or a possible stop string). */
  readonly text: string;
  /** 0-based index among the new tokens. */
  readonly index: number;
}

export interface GenerationResult {
  readonly reason: StopReason;
  readonly text: string;
  /** New token ids (an EOS token is not included). */
  readonly tokenIds: readonly number[];
  readonly promptTokens: number;
  /** Milliseconds spent in prefill (embeddings + prompt steps + first logits) and in decoding. */
  readonly prefillMs: number;
  readonly decodeMs: number;
  /** New tokens per second over the whole generation (prefill included). */
  readonly tokensPerSecond: number;
}

/** Token ids already fed into a session, and the last sampled token not fed yet. */
export interface ConversationState {
  /** Ids whose positions are in the session's cache. */
  readonly tokens: number[];
  /** Sampled but not yet fed (the last token of the previous turn). */
  pending: number[];
}

export function newConversation(): ConversationState {
  return { tokens: [], pending: [] };
}

export interface GenerationDeps {
  readonly head: ClientHead;
  readonly tokenizer: Tokenizer;
  readonly session: StepSession;
  /** Pass the same object to the next call to continue the conversation (default: a fresh one). */
  readonly conversation?: ConversationState;
  /** Called once when the iteration ends (normally, by error, or by an early break). */
  readonly onEnd?: () => Promise<void> | void;
}

/** One generation, iterable once; `result` is set when the iteration ends. */
export class Generation implements AsyncIterable<GeneratedToken> {
  #result: GenerationResult | undefined;
  #started = false;
  readonly #deps: GenerationDeps;
  readonly #input: string | readonly number[];
  readonly #o: GenerateOptions;
  readonly #stop: StopCondition;
  readonly #sampler: TokenSampler;

  constructor(deps: GenerationDeps, input: string | readonly number[], options: GenerateOptions) {
    this.#deps = deps;
    this.#input = input;
    this.#o = options;
    this.#sampler = new TokenSampler(options);
    this.#stop = new StopCondition({
      maxNewTokens: options.maxNewTokens,
      stopStrings: options.stopStrings,
      eosTokenIds: options.eosTokenIds ?? deps.tokenizer.eos.map((t) => t.id),
    });
    const chunk = options.prefillChunkTokens ?? 512;
    if (!(Number.isInteger(chunk) && chunk >= 1)) {
      throw new ConfigError(
        "PREFILL_CHUNK_INVALID",
        `prefillChunkTokens must be an integer ≥ 1, got ${chunk}`,
        {
          hint: "use e.g. 512",
        },
      );
    }
  }

  /** Set once the iteration has finished normally. */
  get result(): GenerationResult | undefined {
    return this.#result;
  }

  [Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    if (this.#started) throw new SwarmError("GENERATION_REUSED", "a Generation can be iterated only once");
    this.#started = true;
    return this.#guarded();
  }

  async *#guarded(): AsyncGenerator<GeneratedToken> {
    try {
      yield* this.#run();
    } finally {
      await this.#deps.onEnd?.();
    }
  }

  /** Runs to the end and returns the result (for non-streaming callers). */
  async complete(): Promise<GenerationResult> {
    for await (const _ of this) { /* drain */ }
    return this.#result!;
  }

  async *#run(): AsyncGenerator<GeneratedToken> {
    const { tokenizer, session } = this.#deps;
    const conv = this.#deps.conversation ?? newConversation();
    const signal = this.#o.signal;
    const t0 = performance.now();
    if (conv.tokens.length !== session.position) {
      throw new SwarmError(
        "CONVERSATION_MISMATCH",
        `conversation holds ${conv.tokens.length} tokens but the session is at position ${session.position}`,
        { hint: "use one ConversationState per session and do not step the session elsewhere" },
      );
    }
    const promptIds = typeof this.#input === "string"
      ? tokenizer.encode(this.#input, {
        addSpecialTokens: conv.tokens.length === 0 && conv.pending.length === 0,
      })
      : [...this.#input];
    const feed = [...conv.pending, ...promptIds];
    if (feed.length === 0) {
      throw new ConfigError("EMPTY_PROMPT", "the prompt encodes to zero tokens", {
        hint: "pass a non-empty prompt",
      });
    }
    const need = session.position + feed.length + this.#o.maxNewTokens - 1;
    if (need > session.maxLength) {
      throw new ConfigError(
        "TOO_LONG",
        `${session.position} past + ${feed.length} prompt + ${this.#o.maxNewTokens} new tokens need ${need} positions, ` +
          `but the session holds ${session.maxLength}`,
        { hint: "lower --max-new-tokens, shorten the prompt, or open the session with a larger maxLength" },
      );
    }
    // prefill in chunks
    const chunk = this.#o.prefillChunkTokens ?? 512;
    let out: Hidden | undefined;
    for (let i = 0; i < feed.length; i += chunk) {
      signal?.throwIfAborted();
      const ids = feed.slice(i, i + chunk);
      out = await session.step(await this.#embed(ids), { signal });
      conv.tokens.push(...ids);
    }
    conv.pending = [];
    let token = await this.#next(out!, conv.tokens);
    const tPrefill = performance.now();
    const generated: number[] = [];
    let emitted = 0;
    let reason: StopReason;
    let text = "";
    const texts = new IncrementalText((ids) => tokenizer.decode(ids));
    let decoded = "";
    for (;;) {
      const count = generated.length + 1;
      const eos = this.#stop.isEos(token);
      if (!eos) {
        generated.push(token);
        decoded = texts.push(token);
      }
      const verdict = this.#stop.check(token, count, decoded);
      let upTo = verdict.emittable;
      if (!verdict.reason && verdict.text.charCodeAt(upTo - 1) === 0xfffd) upTo--; // incomplete character
      upTo = Math.max(upTo, emitted);
      text = verdict.text;
      if (!eos) {
        yield { tokenId: token, text: text.slice(emitted, upTo), index: generated.length - 1 };
        emitted = upTo;
      }
      if (verdict.reason) {
        reason = verdict.reason;
        conv.pending = [token];
        break;
      }
      signal?.throwIfAborted();
      out = await session.step(await this.#embed([token]), { signal });
      conv.tokens.push(token);
      token = await this.#next(out, conv.tokens);
    }
    const tEnd = performance.now();
    this.#result = Object.freeze({
      reason,
      text,
      tokenIds: Object.freeze([...generated]),
      promptTokens: feed.length,
      prefillMs: tPrefill - t0,
      decodeMs: tEnd - tPrefill,
      tokensPerSecond: generated.length / Math.max(1e-9, (tEnd - t0) / 1000),
    });
  }

  async #embed(ids: readonly number[]): Promise<Hidden> {
    return await this.#deps.head.embed({ data: Int32Array.from(ids), shape: [1, ids.length] }, {
      signal: this.#o.signal,
    });
  }

  async #next(out: Hidden, context: readonly number[]): Promise<number> {
    const [, t, h] = out.shape;
    const last = sliceTokens(out, t - 1, t).data;
    const logits = await this.#deps.head.logits({ data: last, shape: [1, h] }, { signal: this.#o.signal });
    return this.#sampler.sample(logits.data.subarray(0, logits.shape[1]), context);
  }
}

/** Starts a generation (lazy: nothing runs until it is iterated). */
export function generateText(
  deps: GenerationDeps,
  input: string | readonly number[],
  options: GenerateOptions,
): Generation {
  return new Generation(deps, input, options);
}
