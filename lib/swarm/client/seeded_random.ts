/**
 * A small, fast, seedable PRNG (SplitMix32 to mix the seed, Mulberry32 to generate) so that
 * sampling with a seed is reproducible across runs and machines.
 * @module
 */

function mix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Deterministic random numbers in [0, 1) from a seed. */
export class SeededRandom {
  #state: number;
  /** `seed`: any safe integer (default: random). */
  constructor(seed?: number) {
    const s = seed ?? Math.floor(Math.random() * 2 ** 32);
    if (!Number.isSafeInteger(s)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    const hi = Math.floor(Math.abs(s) / 2 ** 32) >>> 0;
    this.#state = mix32(mix32(s >>> 0) ^ hi ^ (s < 0 ? 0x5bd1e995 : 0));
  }
  /** Next float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
