/**
 * Adapts the swarm client's generation loop to the HTTP API's `Generator`: tokenizes the prompt,
 * opens a session through every block of the model (routed over the swarm; this node's own span is
 * one of the servers, reached over loopback, so its work is counted once by its swarm server),
 * runs `generateText` with the API's sampling parameters and closes the session at the end.
 * @module
 */
import type {
  GeneratedToken,
  GenerationParams,
  Generator,
  GeneratorInfo,
  PromptOptions,
} from "../api/types.ts";
import type { ClientHead, Tokenizer } from "../runtime/types.ts";
import { generateText, type StepSession } from "../swarm/client/generate_text.ts";

/** A step session that can be closed (the swarm client's `SwarmInferenceSession` fits). */
export interface ClosableStepSession extends StepSession {
  close(): Promise<void>;
}

export interface SwarmGeneratorOptions {
  readonly model: string;
  readonly tokenizer: Tokenizer;
  readonly head: ClientHead;
  /** Opens a session over all blocks that can hold `maxLength` tokens. */
  openSession(maxLength: number, options: { signal: AbortSignal }): Promise<ClosableStepSession>;
  /** Longest prompt + new tokens (the model's/servers' max length). */
  readonly maxContextTokens?: number;
  /** Text forms of the special tokens for chat templates (`bos_token`, `eos_token`, ...). */
  readonly specialTokens?: Readonly<Record<string, string>>;
  /** Whether generation can run now (default: always). */
  readonly ready?: () => boolean;
  /** Unix seconds, shown by /v1/models. */
  readonly createdAt?: number;
  /** Longest prefill step (default: the loop's own). */
  readonly prefillChunkTokens?: number;
}

/** Encoded prompts kept (`#encode`). */
const ENCODED_KEPT = 8;

export class SwarmGenerator implements Generator {
  readonly #o: SwarmGeneratorOptions;
  readonly #encoded = new Map<string, number[]>();

  constructor(options: SwarmGeneratorOptions) {
    this.#o = options;
  }

  info(): GeneratorInfo {
    const t = this.#o.tokenizer;
    const special: Record<string, string> = {};
    if (t.bos) special.bos_token = t.bos.text;
    if (t.eos[0]) special.eos_token = t.eos[0].text;
    if (t.pad) special.pad_token = t.pad.text;
    if (t.unk) special.unk_token = t.unk.text;
    return {
      model: this.#o.model,
      ready: this.#o.ready?.() ?? true,
      chatTemplate: t.chatTemplate,
      specialTokens: { ...special, ...this.#o.specialTokens },
      maxContextTokens: this.#o.maxContextTokens,
      createdAt: this.#o.createdAt,
    };
  }

  countTokens(text: string, options: PromptOptions = {}): number {
    return this.#encode(text, options).length;
  }

  /**
   * The prompt's ids; the API counts a prompt before it generates from it, so the last few
   * encodings are kept (a long prompt is tokenized once, not twice, on the event loop).
   */
  #encode(text: string, { templated = false }: PromptOptions): number[] {
    const key = (templated ? "t" : "r") + text;
    const hit = this.#encoded.get(key);
    if (hit) return hit;
    const ids = this.#o.tokenizer.encode(text, { addSpecialTokens: !templated });
    if (this.#encoded.size >= ENCODED_KEPT) this.#encoded.delete(this.#encoded.keys().next().value!);
    this.#encoded.set(key, ids);
    return ids;
  }

  async *generate(
    prompt: string,
    params: GenerationParams,
    { signal, templated }: { signal: AbortSignal } & PromptOptions,
  ): AsyncGenerator<GeneratedToken> {
    const ids = this.#encode(prompt, { templated });
    const session = await this.#o.openSession(ids.length + params.maxNewTokens, { signal });
    try {
      const gen = generateText({ head: this.#o.head, tokenizer: this.#o.tokenizer, session }, ids, {
        maxNewTokens: params.maxNewTokens,
        temperature: params.doSample ? params.temperature : 0,
        topP: params.topP,
        repetitionPenalty: params.repetitionPenalty,
        seed: params.seed,
        prefillChunkTokens: this.#o.prefillChunkTokens,
        signal,
      });
      for await (const t of gen) yield { tokenId: t.tokenId, text: t.text };
    } finally {
      await session.close().catch(() => {});
    }
  }
}
