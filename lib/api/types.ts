/**
 * What the HTTP API needs from the rest of the node, as interfaces: a `Generator` (the swarm
 * client's generation loop, adapted by node/) and a `NodeStatusSource` for `/health`.
 * The API never imports swarm/, runtime/ or chain/ itself.
 * @module
 */

/** Sampling parameters of one generation, already validated by the API. */
export interface GenerationParams {
  /** New tokens at most, 1..4096. */
  readonly maxNewTokens: number;
  /** 0..2; 0 means greedy. */
  readonly temperature: number;
  /** Nucleus mass, 0..1 (1 = off). */
  readonly topP: number;
  /** 1..2 (1 = off), as in Hugging Face transformers. */
  readonly repetitionPenalty: number;
  /** false (or temperature 0) = greedy decoding. */
  readonly doSample: boolean;
  /** Seed of the sampler (the same seed, prompt and parameters give the same text). */
  readonly seed?: number;
}

/** One generated token. */
export interface GeneratedToken {
  /** Vocabulary id of the token. */
  readonly tokenId: number;
  /**
   * The text this token adds. The generator is responsible for clean boundaries: the
   * concatenation of every `text` of a generation equals the decoding of all its tokens
   * (a token that ends inside a multi-byte character yields "" and the next one carries it).
   */
  readonly text: string;
}

/** What the API shows about the model being served. */
export interface GeneratorInfo {
  /** Model id as announced (e.g. `bigscience/bloom-560m`). */
  readonly model: string;
  /** false while the node is still loading: generation endpoints answer 503. */
  readonly ready: boolean;
  /** Jinja chat template from the checkpoint's tokenizer_config.json, when it has one. */
  readonly chatTemplate?: string;
  /** Special tokens the chat template may refer to (`bos_token`, `eos_token`, ...). */
  readonly specialTokens?: Readonly<Record<string, string>>;
  /** Longest context (prompt + new tokens) the model supports, when known. */
  readonly maxContextTokens?: number;
  /** Unix seconds when the model became available (the OpenAI `created` field). */
  readonly createdAt?: number;
}

/** How a prompt's text becomes tokens. */
export interface PromptOptions {
  /**
   * The text was rendered by the checkpoint's chat template, which writes the special tokens it
   * wants (`{{ bos_token }}`): none are added again, as transformers' `apply_chat_template` does.
   */
  readonly templated?: boolean;
}

/**
 * Generation through the swarm. node/ adapts the swarm client to this; tests use a fake.
 * `generate` must stop promptly when `signal` aborts, and throw `PlumiseError`s (an `ApiError`
 * carries its own HTTP status; `ConfigError` maps to 400, `TimeoutError` to 504,
 * `SwarmError`/`UnavailableError` to 503, anything else to 500).
 */
export interface Generator {
  /**
   * Optional: loads what generation needs (tokenizer, client head, swarm connection) on first use.
   * The API awaits it before `info()`'s template/limits, `countTokens` and `generate` are used for
   * a request; a failure answers that request (503 for `UnavailableError`/`SwarmError`).
   */
  prepare?(options: { signal: AbortSignal }): Promise<void>;
  info(): GeneratorInfo;
  /** Number of tokens of `text` after tokenization (for `usage.prompt_tokens`). */
  countTokens(text: string, options?: PromptOptions): number;
  generate(
    prompt: string,
    params: GenerationParams,
    options: { signal: AbortSignal } & PromptOptions,
  ): AsyncIterable<GeneratedToken>;
}

/** Swarm coverage summary shown by `/health`. */
export interface CoverageSummary {
  /** Blocks of the model. */
  readonly totalBlocks: number;
  /** Blocks served by at least one online server. */
  readonly coveredBlocks: number;
  /** true when every block is covered. */
  readonly complete: boolean;
  /** Online servers known in the swarm table (this node included). */
  readonly servers: number;
}

/** Live facts about this node for `/health`; every field optional (offline mode has no address). */
export interface NodeStatus {
  readonly address?: string;
  readonly peerId?: string;
  readonly span?: { readonly start: number; readonly end: number };
  /** `joining` | `online` | `offline` ... as announced. */
  readonly state?: string;
  /** While the node starts: the phase in progress (e.g. `loading blocks 2:4`), shown as /health's reason. */
  readonly starting?: string;
  readonly coverage?: CoverageSummary;
  /** Anything else worth showing (kept JSON-safe by the caller). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

export interface NodeStatusSource {
  status(): NodeStatus;
}

/** One chat message as the OpenAI API sends it (content already flattened to text). */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
  readonly name?: string;
  /** An assistant turn's tool calls (OpenAI's shape), for the chat template. */
  readonly tool_calls?: readonly {
    readonly id: string;
    readonly type: "function";
    readonly function: { readonly name: string; readonly arguments: string };
  }[];
  /** The call a tool turn answers. */
  readonly tool_call_id?: string;
}
