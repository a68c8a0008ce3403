/**
 * `RateBudget`: token buckets by key (a source address, a peer): each key may spend `burst` at
 * once and gets `perMinute` back per minute, up to `burst`. Used to bound what one source can add
 * to the swarm table and how fast records are passed on (docs/protocol.md, "Records"). Memory is bounded:
 * at most `maxKeys` buckets; full buckets are forgotten first (they hold nothing), then the
 * oldest.
 * @module
 */

export interface RateBudgetOptions {
  /** Most a key can spend at once (the bucket's size). */
  readonly burst: number;
  /** Refill per minute. */
  readonly perMinute: number;
  /** Most keys remembered (default 4096). */
  readonly maxKeys?: number;
  readonly now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateBudget {
  readonly #o: RateBudgetOptions;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateBudgetOptions) {
    if (!(options.burst >= 1) || !(options.perMinute > 0)) {
      throw new RangeError(
        `a rate budget needs burst ≥ 1 and perMinute > 0, got ${options.burst}, ${options.perMinute}`,
      );
    }
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  #bucket(key: string): Bucket {
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (!b) {
      this.#makeRoom();
      b = { tokens: this.#o.burst, at: now };
      this.#buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.#o.burst, b.tokens + ((now - b.at) / 60_000) * this.#o.perMinute);
      b.at = now;
    }
    return b;
  }

  /** What `key` may spend now. */
  available(key: string): number {
    return Math.floor(this.#bucket(key).tokens);
  }

  /** Spends `n` of `key`'s budget when it has that much; false (nothing spent) otherwise. */
  take(key: string, n = 1): boolean {
    const b = this.#bucket(key);
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
  }

  /** Keys remembered. */
  get size(): number {
    return this.#buckets.size;
  }

  #makeRoom(): void {
    const max = this.#o.maxKeys ?? 4096;
    if (this.#buckets.size < max) return;
    const now = this.#now();
    for (const [k, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) / 60_000) * this.#o.perMinute >= this.#o.burst) this.#buckets.delete(k);
    }
    // still full: the oldest key goes (Map keeps insertion order)
    while (this.#buckets.size >= max) this.#buckets.delete(this.#buckets.keys().next().value!);
  }
}
