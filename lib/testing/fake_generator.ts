/**
 * A fake `Generator` for the API's unit tests: it "generates" a fixed script of tokens, records
 * every call, can be held at a gate, fail at a chosen token, or run until aborted.
 * @module
 */
import type {
  GeneratedToken,
  GenerationParams,
  Generator,
  GeneratorInfo,
  PromptOptions,
} from "../api/types.ts";
import { raceAbort } from "../util/abort.ts";

export interface FakeGeneratorOptions {
  /** Token texts produced in order (default: " one", " two", ...). */
  script?: string[];
  info?: Partial<GeneratorInfo>;
  /** Throw this error before yielding token number `failAt` (0 = before the first). */
  fail?: { at: number; error: Error };
  /** Never finish: yield the script, then wait for the signal to abort. */
  hang?: boolean;
}

export class FakeGenerator implements Generator {
  readonly calls: Array<{ prompt: string; params: GenerationParams; templated?: boolean }> = [];
  ready = true;
  /** Number of generations that have ended (completed, aborted, or returned early). */
  ended = 0;
  /** Aborted generations seen. */
  aborted = 0;
  #gate?: { promise: Promise<void>; open: () => void };
  #startedWaiters: Array<() => void> = [];
  readonly #o: FakeGeneratorOptions;
  script: string[];

  constructor(options: FakeGeneratorOptions = {}) {
    this.#o = options;
    this.script = options.script ?? [" one", " two", " three", " four", " five", " six", " seven", " eight"];
  }

  /** Times `prepare()` was called; set `prepareError` to make it fail. */
  prepared = 0;
  prepareError?: Error;

  prepare(_options: { signal: AbortSignal }): Promise<void> {
    this.prepared++;
    return this.prepareError ? Promise.reject(this.prepareError) : Promise.resolve();
  }

  /** Holds every generation before its first token until `open()`. */
  hold(): { open: () => void } {
    let open!: () => void;
    const promise = new Promise<void>((r) => (open = r));
    this.#gate = { promise, open };
    return { open };
  }

  /** Resolves once `n` generations have started. */
  started(n: number): Promise<void> {
    if (this.calls.length >= n) return Promise.resolve();
    return new Promise((resolve) => {
      const check = () => (this.calls.length >= n ? resolve() : this.#startedWaiters.push(check));
      this.#startedWaiters.push(check);
    });
  }

  info(): GeneratorInfo {
    return { model: "test-org/tiny-model", ready: this.ready, ...this.#o.info };
  }

  countTokens(text: string, _options?: PromptOptions): number {
    return text.split(/\s+/).filter(Boolean).length;
  }

  async *generate(
    prompt: string,
    params: GenerationParams,
    { signal, templated }: { signal: AbortSignal } & PromptOptions,
  ): AsyncGenerator<GeneratedToken> {
    this.calls.push({ prompt, params, ...(templated ? { templated } : {}) });
    const waiters = this.#startedWaiters;
    this.#startedWaiters = [];
    for (const w of waiters) w();
    try {
      if (this.#gate) await raceAbort(this.#gate.promise, { signal });
      for (let i = 0; i < params.maxNewTokens; i++) {
        if (signal.aborted) throw signal.reason;
        if (this.#o.fail && this.#o.fail.at === i) throw this.#o.fail.error;
        if (i >= this.script.length) {
          if (this.#o.hang) await raceAbort(new Promise(() => {}), { signal });
          return;
        }
        await Promise.resolve();
        yield { tokenId: 100 + i, text: this.script[i] };
      }
    } catch (err) {
      if (signal.aborted) this.aborted++;
      throw err;
    } finally {
      this.ended++;
    }
  }
}

/** Reads an SSE body into its `data:` payloads. */
export async function readSse(response: Response): Promise<string[]> {
  const text = await response.text();
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice("data: ".length));
}
