/**
 * A `Generator` whose real implementation is built on first use (`prepare`), so a serving node
 * does not hold the tokenizer, the client head (embeddings + LM head: the largest tensors of
 * most models) and a client swarm connection until someone asks it to generate. A failed build
 * is retried by the next request; concurrent requests share one build, which runs under the
 * generator's own signal (aborted by `close`): a request that gives up stops waiting for it, and
 * does not cancel it for the others.
 * @module
 */
import type {
  GeneratedToken,
  GenerationParams,
  Generator,
  GeneratorInfo,
  PromptOptions,
} from "../api/types.ts";
import { UnavailableError } from "../errors.ts";
import { raceAbort } from "../util/abort.ts";

export interface LazyGeneratorOptions {
  readonly model: string;
  /** Builds the real generator (and returns how to release it). */
  build(options: { signal: AbortSignal }): Promise<{ generator: Generator; close?: () => Promise<void> }>;
  /** Whether the node can generate now (default: always). */
  readonly ready?: () => boolean;
  /** Unix seconds the model card says it was created (the same before and after the build). */
  readonly createdAt?: number;
}

/** What a request gets once the generator is closing. */
const shuttingDown = () =>
  new UnavailableError("SHUTTING_DOWN", "the node is shutting down", { hint: "retry on another node" });

export class LazyGenerator implements Generator {
  readonly #o: LazyGeneratorOptions;
  #built?: { generator: Generator; close?: () => Promise<void> };
  #building?: Promise<void>;
  #closed = false;
  readonly #lifetime = new AbortController();

  constructor(options: LazyGeneratorOptions) {
    this.#o = options;
  }

  /** Whether the real generator has been built. */
  get built(): boolean {
    return this.#built !== undefined;
  }

  prepare({ signal }: { signal: AbortSignal }): Promise<void> {
    if (this.#closed) {
      return Promise.reject(shuttingDown());
    }
    if (this.#built) return this.#built.generator.prepare?.({ signal }) ?? Promise.resolve();
    this.#building ??= this.#o.build({ signal: this.#lifetime.signal }).then(
      (b) => {
        if (this.#closed) {
          void b.close?.();
          throw shuttingDown();
        }
        this.#built = b;
      },
    ).finally(() => (this.#building = undefined));
    return raceAbort(this.#building, { signal });
  }

  info(): GeneratorInfo {
    const ready = this.#o.ready?.() ?? true;
    if (this.#built) {
      const info = this.#built.generator.info();
      return { ...info, createdAt: this.#o.createdAt ?? info.createdAt, ready: ready && info.ready };
    }
    return {
      model: this.#o.model,
      ready,
      ...(this.#o.createdAt === undefined ? {} : { createdAt: this.#o.createdAt }),
    };
  }

  countTokens(text: string, options?: PromptOptions): number {
    return this.#need().countTokens(text, options);
  }

  generate(
    prompt: string,
    params: GenerationParams,
    options: { signal: AbortSignal } & PromptOptions,
  ): AsyncIterable<GeneratedToken> {
    return this.#need().generate(prompt, params, options);
  }

  /** Releases the real generator (idempotent). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#lifetime.abort(shuttingDown());
    await this.#building?.catch(() => {});
    const b = this.#built;
    this.#built = undefined;
    await b?.close?.();
  }

  #need(): Generator {
    if (!this.#built) {
      throw new UnavailableError("NOT_PREPARED", "the generator is not loaded yet", {
        hint: "call prepare() first (the HTTP API does)",
      });
    }
    return this.#built.generator;
  }
}
