/**
 * Exponential backoff with jitter, and a retry loop built on it.
 * @module
 */
import { sleep } from "./abort.ts";

export interface BackoffOptions {
  /** First delay in ms (default 1000). */
  initialMs?: number;
  /** Largest delay in ms (default 60 000). */
  maxMs?: number;
  /** Growth factor (default 2). */
  factor?: number;
  /** Fraction of random jitter, 0..1 (default 0.2). */
  jitter?: number;
  /** Random source in [0,1), for tests. */
  random?: () => number;
}

/** Stateful backoff: `next()` gives the next delay, `reset()` after a success. */
export class Backoff {
  #attempt = 0;
  readonly #o: Required<BackoffOptions>;
  constructor(options: BackoffOptions = {}) {
    this.#o = {
      initialMs: options.initialMs ?? 1000,
      maxMs: options.maxMs ?? 60_000,
      factor: options.factor ?? 2,
      jitter: options.jitter ?? 0.2,
      random: options.random ?? Math.random,
    };
  }
  get attempt(): number {
    return this.#attempt;
  }
  next(): number {
    const base = Math.min(this.#o.maxMs, this.#o.initialMs * this.#o.factor ** this.#attempt);
    this.#attempt++;
    const j = base * this.#o.jitter * (this.#o.random() * 2 - 1);
    return Math.max(0, Math.round(Math.min(this.#o.maxMs, base + j)));
  }
  reset(): void {
    this.#attempt = 0;
  }
}

export interface RetryOptions extends BackoffOptions {
  /** Attempts in total, including the first (default 5). */
  attempts?: number;
  signal?: AbortSignal;
  /** Return false to stop retrying (the error is rethrown at once). */
  retryIf?: (err: unknown) => boolean;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

/** Calls `fn` until it succeeds, with backoff between attempts; rethrows the last error. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions = {}): Promise<T> {
  const attempts = options.attempts ?? 5;
  const backoff = new Backoff(options);
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= attempts || options.signal?.aborted || (options.retryIf && !options.retryIf(err))) {
        throw err;
      }
      const delay = backoff.next();
      options.onRetry?.(err, attempt, delay);
      await sleep(delay, { signal: options.signal });
    }
  }
}
