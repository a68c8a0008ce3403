/**
 * When generation ends: an end-of-sequence token, a stop string in the generated text, or the
 * token budget. While streaming, text that might be the start of a stop string is held back so a
 * stop string is never partly emitted.
 * @module
 */
import { ConfigError } from "../../errors.ts";
import { firstStopIndex, heldBackLength } from "../../util/stop_strings.ts";

export type StopReason = "eos" | "stop_string" | "max_tokens";

export interface StopOptions {
  /** Token ids that end generation (the EOS token is not part of the output). */
  readonly eosTokenIds?: readonly number[];
  /** Strings that end generation (they are cut from the output). */
  readonly stopStrings?: readonly string[];
  /** Most new tokens to generate (≥ 1). */
  readonly maxNewTokens: number;
}

export interface StopVerdict {
  /** Why generation ends now; undefined = go on. */
  readonly reason?: StopReason;
  /** The generated text to keep (cut before a stop string). */
  readonly text: string;
  /** How many characters of `text` may be emitted now (the rest could start a stop string). */
  readonly emittable: number;
}

export class StopCondition {
  readonly #eos: ReadonlySet<number>;
  readonly #stops: readonly string[];
  readonly maxNewTokens: number;

  constructor(options: StopOptions) {
    if (!(Number.isInteger(options.maxNewTokens) && options.maxNewTokens >= 1)) {
      throw new ConfigError(
        "MAX_NEW_TOKENS_INVALID",
        `maxNewTokens must be an integer ≥ 1, got ${options.maxNewTokens}`,
        {
          hint: "pass e.g. --max-new-tokens 64",
        },
      );
    }
    const stops = options.stopStrings ?? [];
    if (stops.some((s) => typeof s !== "string" || s.length === 0)) {
      throw new ConfigError(
        "STOP_STRING_INVALID",
        `stop strings must be non-empty, got ${JSON.stringify(stops)}`,
        {
          hint: "drop the empty stop string",
        },
      );
    }
    this.#eos = new Set(options.eosTokenIds ?? []);
    this.#stops = stops;
    this.maxNewTokens = options.maxNewTokens;
  }

  /** True when `tokenId` ends generation by itself. */
  isEos(tokenId: number): boolean {
    return this.#eos.has(tokenId);
  }

  /**
   * Verdict after the `count`-th new token (1-based) `tokenId`, whose decoded generated text (all
   * new tokens so far, EOS excluded) is `text`.
   */
  check(tokenId: number, count: number, text: string): StopVerdict {
    if (this.#eos.has(tokenId)) return { reason: "eos", text, emittable: text.length };
    const cut = firstStopIndex(text, this.#stops);
    if (cut >= 0) {
      const kept = text.slice(0, cut);
      return { reason: "stop_string", text: kept, emittable: kept.length };
    }
    if (count >= this.maxNewTokens) return { reason: "max_tokens", text, emittable: text.length };
    return { text, emittable: text.length - heldBackLength(text, this.#stops) };
  }
}
