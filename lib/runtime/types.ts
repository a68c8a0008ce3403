/**
 * The contract of the block runtime: what the swarm server calls to run transformer blocks
 * (`BlockRuntime`), what the generation client calls to run the head (`ClientHead`) and to
 * tokenize (`Tokenizer`). Other folders import only this file (tests also use lib/testing's `FakeBackend`).
 *
 * Units and conventions
 * - Hidden states are row-major float32 `[B, T, H]` (batch, tokens, hidden size).
 * - A "cache token" is one position of one sequence for one block (its K and V rows): a session
 *   opened with `{start, end, maxLength, batch}` reserves `batch × maxLength × (end − start)` of them.
 * - Positions count from 0; a session's `position` is the number of tokens already in its cache.
 *
 * Errors are `RuntimeError`s (lib/errors.ts) whose `code` is one of `RuntimeErrorCode`, or one of
 * `NATIVE_ERROR_CODES` (native/ort_library.ts) where the onnxruntime library cannot be had or loaded.
 * @module
 */
import type { WeightFormat } from "../config/types.ts";
import type { ErrorCode } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import type { CpuPinning } from "../util/cpu_list.ts";
import type { DirectOffer, WireDType } from "../wire/mod.ts";

export type { WeightFormat };

/** Model families the runtime can build blocks for (Mistral, Qwen2 and Qwen3 configs run as "llama"). */
export type ModelType = "bloom" | "llama";

/**
 * The codes every `BlockRuntime` / `ClientHead` implementation raises; their meanings are in the
 * registry (`ERROR_CODES`, lib/error_codes.ts).
 */
export type RuntimeErrorCode = Extract<
  ErrorCode,
  | "CACHE_FULL"
  | "UNKNOWN_SESSION"
  | "BAD_INPUT"
  | "TOO_LONG"
  | "BAD_SPAN"
  | "NOT_RUNNING"
  | "BAD_MEASUREMENT"
  | "BAD_PINNING"
  | "UNSUPPORTED_MODEL"
  | "BAD_CHECKPOINT"
  | "ENGINE_FAILED"
  | "NO_DIRECT"
>;

/** A float32 tensor of hidden states, row-major, shape `[B, T, H]`. */
export interface HiddenStates {
  readonly data: Float32Array;
  readonly shape: readonly [batch: number, tokens: number, hidden: number];
}

/** What a runtime serves; a fresh snapshot on every `info()` call. */
export interface RuntimeInfo {
  /** Hub repo id or local directory the blocks came from. */
  readonly modelId: string;
  /** Revision (branch/tag/commit) for hub models; undefined for local directories. */
  readonly revision?: string;
  readonly modelType: ModelType;
  readonly hiddenSize: number;
  /** Total transformer layers of the model (not the served span). */
  readonly numBlocks: number;
  /** Served span `[start, end)`. */
  readonly start: number;
  readonly end: number;
  /** Weight format of the served blocks; part of the blocks' identity. */
  readonly weights: WeightFormat;
  /** Total KV cache budget, in cache tokens (see module doc). */
  readonly cacheTokensTotal: number;
  /** Budget not reserved by open sessions. */
  readonly cacheTokensLeft: number;
  /** Longest sequence (past + new tokens) a session or forward call may reach. */
  readonly maxLength: number;
  /** Sessions currently open. */
  readonly openSessions: number;
  /** The port direct paths are offered on, when the runtime listens for them. */
  readonly directPort?: number;
  /**
   * The CPUs its compute threads are pinned to, the calling thread's first (absent: not pinned, by
   * setting or by `CPU_PINNING=auto`'s decision).
   */
  readonly pinnedCpus?: readonly number[];
}

export interface OpenSessionOptions {
  /** First block, inclusive; must lie in the served span. */
  readonly start: number;
  /** Last block, exclusive; must lie in the served span and be > start. */
  readonly end: number;
  /** Most tokens the session will ever hold (≥ 1, ≤ `info().maxLength`). */
  readonly maxLength: number;
  /** Batch size B of every step (≥ 1). */
  readonly batch: number;
  readonly signal?: AbortSignal;
}

export interface StepOptions {
  /**
   * Roll the cache back to this position before running the step (0 ≤ value ≤ position);
   * tokens at and after it are forgotten. Used for replay and speculative decoding.
   */
  readonly startFromPosition?: number;
  /**
   * Reorder the batch before running the step (beam search): new row b of the cache is old row
   * `hypoIds[b]`. Length B, every value in `[0, B)`.
   */
  readonly hypoIds?: ArrayLike<number>;
  readonly signal?: AbortSignal;
}

/** One client's inference session over a span, holding a KV cache per block. */
export interface InferenceSession {
  readonly id: string;
  readonly start: number;
  readonly end: number;
  readonly maxLength: number;
  readonly batch: number;
  /** Tokens currently in the cache (after the last step). */
  readonly position: number;
  /** True after `close()`. */
  readonly closed: boolean;
  /**
   * Runs the span's blocks on `hidden` `[B, T, H]` (B = `batch`, T ≥ 1) after the cached past,
   * appends the new K/V and returns the span's output `[B, T, H]`.
   * Throws `UNKNOWN_SESSION` when closed, `BAD_INPUT`, `TOO_LONG`.
   */
  step(hidden: HiddenStates, options?: StepOptions): Promise<HiddenStates>;
  /** Frees the cache reservation. Idempotent. */
  close(): Promise<void>;
  /**
   * Offers to serve this session's steps over a direct path that the runtime owns
   * (lib/wire/direct_channel.ts, lib/runtime/direct_steps.ts); absent when the runtime was
   * started without one. The session's own `step` must not be used once attached.
   */
  offerDirect?(options: DirectOfferOptions): Promise<DirectServing>;
}

export interface DirectOfferOptions {
  /** Wire dtype of the session's hidden states. */
  readonly dtype: WireDType;
  /**
   * Called for each step served over the direct path (metrics, idle timers), possibly in batches
   * a little later (the onnx runtime reports at most every 200 ms), always before `ended`.
   */
  readonly onStep?: (event: DirectStepEvent) => void;
}

/** One step served over a direct path. */
export interface DirectStepEvent {
  readonly tokens: number;
  readonly computeMs: number;
}

/** How a served direct path ended: the client closed it, or one error frame was sent. */
export type DirectEnd =
  | { readonly kind: "closed" }
  | { readonly kind: "failed"; readonly code: string; readonly message: string; readonly stepId?: number };

/** A session's direct-path offer and, once the client attached, the served connection. */
export interface DirectServing {
  /** What to send the client in `opened.direct`. */
  readonly offer: DirectOffer;
  /** True once the client attached; false when the offer lapsed or was withdrawn. */
  readonly attached: Promise<boolean>;
  /** Settles when the attached connection ends (never rejects; never settles if not attached). */
  readonly ended: Promise<DirectEnd>;
  /** Withdraws the offer or ends the connection, with an error frame when `error` is given. */
  cancel(error?: { code: string; message: string; hint?: string }): void;
}

/** Where a runtime listens for direct paths (see `InferenceSession.offerDirect`). */
export interface DirectListenOptions {
  /** Listen address (the swarm's host). */
  readonly host: string;
  /** Listen port; 0 picks a free one. */
  readonly port: number;
}

/**
 * The blocks this node serves. Inference steps are served before forward requests.
 * `Backend` is the same thing under the name the swarm uses.
 */
export interface BlockRuntime {
  /** Loads the blocks (idempotent). Must be called before any other method. */
  start(): Promise<void>;
  /** Closes every session and frees everything. Idempotent. */
  stop(): Promise<void>;
  info(): RuntimeInfo;
  /**
   * Moves the direct path's listener to `port` (back to DIRECT_PORT after blocks moved and the old
   * runtime let go of it); answers the port now listening. `NO_DIRECT` without a direct path,
   * `DIRECT_PORT_IN_USE` where the port is still taken (the old one keeps listening).
   */
  rebindDirect?(port: number): Promise<number>;
  /**
   * Reserves `batch × maxLength × (end − start)` cache tokens at once, or throws `CACHE_FULL`
   * (no queueing). Throws `BAD_SPAN`, `BAD_INPUT`, `TOO_LONG` (maxLength above the limit).
   */
  openSession(options: OpenSessionOptions): Promise<InferenceSession>;
  /** Finds an open session by id (undefined when unknown/closed). */
  getSession(id: string): InferenceSession | undefined;
  /** Stateless full-sequence pass through blocks `[start, end)`, positions 0..T-1, no cache kept. */
  forward(
    start: number,
    end: number,
    hidden: HiddenStates,
    options?: { signal?: AbortSignal },
  ): Promise<HiddenStates>;
}

/** Alias used by the swarm. */
export type Backend = BlockRuntime;

/** Token ids, row-major `[B, T]`. */
export interface TokenIds {
  readonly data: Int32Array;
  readonly shape: readonly [batch: number, tokens: number];
}

/** Logits of the last position, row-major `[B, vocab]`. */
export interface Logits {
  readonly data: Float32Array;
  readonly shape: readonly [batch: number, vocab: number];
}

/** Special token ids of a model (from config.json / generation_config.json / tokenizer_config.json). */
export interface SpecialTokenIds {
  readonly bos?: number;
  /** Every id that ends generation (Llama 3 has several). */
  readonly eos: readonly number[];
  readonly pad?: number;
}

export interface HeadInfo {
  readonly modelId: string;
  readonly modelType: ModelType;
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly numBlocks: number;
  readonly specialTokens: SpecialTokenIds;
  /** The longest session (prompt + new tokens) the model's servers take (`sessionLengthLimit`); unknown: absent. */
  readonly maxLength?: number;
}

/** The client-side parts of the model: embeddings before the blocks, final norm + LM head after. */
export interface ClientHead {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly info: HeadInfo;
  /** Token ids `[B, T]` → hidden states `[B, T, H]` (incl. BLOOM's embedding LayerNorm). Throws BAD_INPUT for ids outside the vocabulary. */
  embed(ids: TokenIds, options?: { signal?: AbortSignal }): Promise<HiddenStates>;
  /** Hidden states of the last position `[B, H]` (data of length B×H) → logits `[B, vocab]` (final norm + LM head). */
  logits(
    last: { data: Float32Array; shape: readonly [number, number] },
    options?: { signal?: AbortSignal },
  ): Promise<Logits>;
}

/** A special token with its text form. */
export interface SpecialToken {
  readonly id: number;
  readonly text: string;
}

/** Text ↔ token ids, from the checkpoint's tokenizer.json (+ tokenizer_config.json). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bos?: SpecialToken;
  readonly eos: readonly SpecialToken[];
  readonly pad?: SpecialToken;
  readonly unk?: SpecialToken;
  /** The Jinja chat template of tokenizer_config.json, if the model has one. */
  readonly chatTemplate?: string;
  /** Encodes text; `addSpecialTokens` (default true) adds e.g. BOS as the model's post-processor says. */
  encode(text: string, options?: { addSpecialTokens?: boolean }): number[];
  /** Decodes ids; `skipSpecialTokens` default true. */
  decode(ids: readonly number[], options?: { skipSpecialTokens?: boolean }): string;
}

/** How a model is referenced: a hub repo id (+ revision) or a local directory. */
export interface ModelSource {
  /** `org/name` on the hub, or a path to a local directory with config.json etc. */
  readonly model: string;
  /** Hub revision, default "main"; ignored for local directories. */
  readonly revision?: string;
  /** Hub endpoint, default https://huggingface.co. */
  readonly hfEndpoint?: string;
  /** Bearer token; redacted everywhere. */
  readonly hfToken?: string;
  /** HF home; files go to `${hfHome}/hub/models--org--name/...`. */
  readonly hfHome?: string;
}

/** Options of the real (onnxruntime) block runtime; see `createBlockRuntime` in runtime/mod.ts. */
export interface BlockRuntimeOptions extends ModelSource {
  /** Served span `[start, end)`. */
  readonly start: number;
  readonly end: number;
  readonly weights: WeightFormat;
  /** KV cache budget in cache tokens; 0 = derive from free memory. */
  readonly cacheTokens?: number;
  /** onnxruntime intra-op threads (default 2). */
  readonly threads?: number;
  /**
   * Pin the compute threads to distinct CPUs (default "auto": only where `threads` equals the CPUs
   * this process may use; Linux). See `CPU_PINNING` in docs/configuration.md.
   */
  readonly pinning?: CpuPinning;
  /** Longest sequence per session (default 8192 or the model's max positions). */
  readonly maxLength?: number;
  readonly logger?: Logger;
  /** Aborts loading (downloads, graph building). */
  readonly signal?: AbortSignal;
  /** Listen for direct paths and let sessions offer them (`InferenceSession.offerDirect`). */
  readonly direct?: DirectListenOptions;
}
