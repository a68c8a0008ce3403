/**
 * Turns logits into the next token: repetition penalty, then greedy or temperature / top-k /
 * top-p sampling with a seeded PRNG (Hugging Face's order of logits processors).
 * @module
 */
import { ConfigError } from "../../errors.ts";
import { SeededRandom } from "./seeded_random.ts";

export interface SamplingOptions {
  /** 0 (default) = greedy; otherwise logits are divided by it before sampling. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined = off). */
  readonly topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1 or undefined = off; 0 = greedy). */
  readonly topP?: number;
  /** > 1 discourages tokens already in the context (HF/CTRL rule); 1 or undefined = off. */
  readonly repetitionPenalty?: number;
  /** Seed for reproducible sampling. */
  readonly seed?: number;
}

/** Checks sampling options; throws a ConfigError listing every problem. */
export function validateSamplingOptions(o: SamplingOptions): void {
  const problems: string[] = [];
  if (o.temperature !== undefined && !(Number.isFinite(o.temperature) && o.temperature >= 0)) {
    problems.push(`temperature must be a finite number ≥ 0, got ${o.temperature}`);
  }
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) {
    problems.push(`topK must be an integer ≥ 0, got ${o.topK}`);
  }
  if (o.topP !== undefined && !(Number.isFinite(o.topP) && o.topP >= 0 && o.topP <= 1)) {
    problems.push(`topP must be in [0, 1], got ${o.topP}`);
  }
  if (
    o.repetitionPenalty !== undefined && !(Number.isFinite(o.repetitionPenalty) && o.repetitionPenalty > 0)
  ) {
    problems.push(`repetitionPenalty must be a finite number > 0, got ${o.repetitionPenalty}`);
  }
  if (o.seed !== undefined && !Number.isSafeInteger(o.seed)) {
    problems.push(`seed must be an integer, got ${o.seed}`);
  }
  if (problems.length > 0) {
    throw new ConfigError("SAMPLING_INVALID", problems.join("; "), {
      problems,
      hint: "use temperature 0 for greedy, e.g. --temperature 0.8 --top-p 0.9 --seed 1",
    });
  }
}

/** Index of the largest value (lowest index on ties); NaN never wins. */
export function argmax(values: ArrayLike<number>): number {
  let best = -1, bestV = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v > bestV || best < 0 && !Number.isNaN(v)) {
      best = i;
      bestV = v;
    }
  }
  if (best < 0) throw new RangeError("argmax of an empty or all-NaN array");
  return best;
}

/** Applies the repetition penalty in place to `logits` for every distinct id in `context`. */
export function applyRepetitionPenalty(
  logits: Float32Array,
  context: readonly number[],
  penalty: number,
): void {
  if (penalty === 1) return;
  const seen = new Set<number>();
  for (const id of context) {
    if (seen.has(id) || id < 0 || id >= logits.length) continue;
    seen.add(id);
    const v = logits[id];
    logits[id] = v < 0 ? v * penalty : v / penalty;
  }
}

/** Indices of the largest `k` values, sorted descending (ties: lower index first). */
function topIndices(values: Float32Array, k: number, max: number): number[] {
  // widen a threshold below the max until at least k candidates pass, then sort only those
  let gap = 1;
  let cand: number[] = [];
  for (;;) {
    const theta = max - gap;
    cand = [];
    for (let i = 0; i < values.length; i++) if (values[i] >= theta) cand.push(i);
    if (cand.length >= k || !Number.isFinite(theta)) break;
    gap *= 4;
    if (gap > 1e30) {
      cand = [];
      for (let i = 0; i < values.length; i++) if (!Number.isNaN(values[i])) cand.push(i);
      break;
    }
  }
  cand.sort((a, b) => values[b] - values[a] || a - b);
  return cand.slice(0, k);
}

/** Samples tokens from logits; one instance per generation (it owns the PRNG state). */
export class TokenSampler {
  readonly options: Readonly<SamplingOptions>;
  readonly #random: SeededRandom;

  constructor(options: SamplingOptions = {}) {
    validateSamplingOptions(options);
    this.options = { ...options };
    this.#random = new SeededRandom(options.seed);
  }

  /** Temperature 0, or top-p 0 (only the most likely token is kept). */
  get greedy(): boolean {
    return !this.options.temperature || this.options.topP === 0;
  }

  /** Picks the next token. `logits` is not modified; `context` = ids seen so far (for the penalty). */
  sample(logits: Float32Array, context: readonly number[] = []): number {
    const o = this.options;
    let x = logits;
    if (o.repetitionPenalty !== undefined && o.repetitionPenalty !== 1 && context.length > 0) {
      x = Float32Array.from(logits);
      applyRepetitionPenalty(x, context, o.repetitionPenalty);
    }
    if (this.greedy) return argmax(x);
    const t = o.temperature!;
    const scaled = new Float32Array(x.length);
    let max = -Infinity;
    for (let i = 0; i < x.length; i++) {
      const v = x[i] / t;
      scaled[i] = Number.isNaN(v) ? -Infinity : v;
      if (scaled[i] > max) max = scaled[i];
    }
    if (!Number.isFinite(max)) {
      // a temperature so small that the logits divided by it overflow (to +Infinity, or all to
      // -Infinity when the largest is negative): only the largest logit can win
      if (!x.some((v) => v > -Infinity)) throw new RangeError("all logits are -Infinity or NaN");
      return argmax(x);
    }
    const k = o.topK && o.topK > 0 && o.topK < x.length ? o.topK : x.length;
    const topP = o.topP ?? 1;
    // candidates in descending order: top-k first (cheap threshold search), else the whole vocab
    let cand: number[];
    if (k < x.length) {
      cand = topIndices(scaled, k, max);
    } else if (topP < 1) {
      // nucleus ⊆ {p ≥ θ} as soon as that set's mass reaches topP; widen θ until it does
      let z = 0;
      for (let i = 0; i < scaled.length; i++) z += Math.exp(scaled[i] - max);
      let gap = 1;
      for (;;) {
        const theta = max - gap;
        cand = [];
        let mass = 0;
        for (let i = 0; i < scaled.length; i++) {
          if (scaled[i] >= theta) {
            cand.push(i);
            mass += Math.exp(scaled[i] - max);
          }
        }
        if (mass / z >= topP - 1e-7 || gap > 1e6) break;
        gap *= 2;
      }
      cand.sort((a, b) => scaled[b] - scaled[a] || a - b);
    } else {
      cand = [];
      for (let i = 0; i < scaled.length; i++) if (scaled[i] > -Infinity) cand.push(i);
    }
    const weights = cand.map((i) => Math.exp(scaled[i] - max));
    let total = weights.reduce((a, b) => a + b, 0);
    if (topP < 1) {
      let cum = 0, keep = 0;
      for (; keep < weights.length; keep++) {
        cum += weights[keep];
        if (cum / total >= topP) {
          keep++;
          break;
        }
      }
      cand = cand.slice(0, Math.max(1, keep));
      weights.length = cand.length;
      total = weights.reduce((a, b) => a + b, 0);
    }
    let r = this.#random.next() * total;
    for (let i = 0; i < cand.length; i++) {
      r -= weights[i];
      if (r < 0) return cand[i];
    }
    return cand[cand.length - 1];
  }
}
