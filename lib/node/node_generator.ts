/**
 * The generator behind the node's HTTP API, which starts before the node's parts exist: not ready
 * (503 LOADING, /health `loading`) until the parts are built and the node is online, then the
 * parts' generator, with every completed generation recorded (a VERIFY_ON_CHAIN proof for the
 * chain agent and the reporter).
 * @module
 */
import type { GeneratedToken, Generator } from "../api/types.ts";
import { errorMessage, UnavailableError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import type { NodeParts } from "./types.ts";

export interface NodeGeneratorOptions {
  readonly model: string;
  /** The node's parts, once built. */
  readonly parts: () => NodeParts | undefined;
  /** Whether the node is online (generations are refused before). */
  readonly online: () => boolean;
  readonly logger: Logger;
}

export function nodeGenerator(o: NodeGeneratorOptions): Generator {
  const parts = () => o.parts()?.generator;
  const need = (): Generator => {
    const g = parts();
    if (!g) {
      throw new UnavailableError("LOADING", "the model is still loading", {
        hint: 'retry in a few seconds; GET /health says status "ok" when ready',
      });
    }
    return g;
  };
  return {
    prepare: (options) => parts()?.prepare?.(options) ?? Promise.resolve(),
    info: () => {
      const g = parts();
      if (!g) return { model: o.model, ready: false };
      const info = g.info();
      return { ...info, ready: info.ready && o.online() };
    },
    countTokens: (text, options) => need().countTokens(text, options),
    generate: (prompt, params, options) =>
      recorded(o, prompt, need().generate(prompt, params, options), options),
  };
}

/**
 * Passes tokens through; a generation that ends normally — exhausted, or closed by the API at its
 * token cap or a stop string — is recorded (VERIFY_ON_CHAIN proof). Failed or aborted ones are not.
 */
async function* recorded(
  o: NodeGeneratorOptions,
  prompt: string,
  tokens: AsyncIterable<GeneratedToken>,
  { signal }: { signal: AbortSignal },
): AsyncGenerator<GeneratedToken> {
  let text = "";
  let n = 0;
  let failed = false;
  try {
    for await (const t of tokens) {
      text += t.text;
      n++;
      yield t;
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    if (!failed && !signal.aborted) record(o, prompt, text, n);
  }
}

function record(o: NodeGeneratorOptions, prompt: string, text: string, n: number): void {
  const p = o.parts();
  if (!p?.chain?.recordInference || n === 0) return;
  try {
    const proof = p.chain.recordInference(prompt, text, n);
    if (proof) p.reporter?.addProof?.(proof);
  } catch (err) {
    o.logger.warn("recording the inference failed", { error: errorMessage(err) });
  }
}
