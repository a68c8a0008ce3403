/**
 * `Mutex`: one user at a time, served in the order they asked (FIFO). `acquire()` resolves, once
 * every earlier holder has released, to the function that releases this hold; `run(fn)` holds it
 * for the duration of `fn`. Releasing twice is harmless. No timeouts: a holder must release (a
 * waiter may give up its place with a signal).
 * @module
 */
import { type AbortOptions, raceAbort } from "./abort.ts";

export class Mutex {
  /** Settles once the last hold queued so far is released (never rejects). */
  #tail: Promise<void> = Promise.resolve();
  #held = 0;

  /** Whether someone holds it or waits for it. */
  get locked(): boolean {
    return this.#held > 0;
  }

  /**
   * Waits for every earlier hold to be released; resolves to the release of this one. A `signal`
   * that aborts first rejects with its reason: the place in the line is then given up (released
   * as soon as its turn comes), so the holders after it are not held up.
   */
  async acquire({ signal }: AbortOptions = {}): Promise<() => void> {
    signal?.throwIfAborted();
    const before = this.#tail;
    let release!: () => void;
    this.#held++;
    let released = false;
    this.#tail = new Promise<void>((r) =>
      release = () => {
        if (released) return;
        released = true;
        this.#held--;
        r();
      }
    );
    try {
      await (signal ? raceAbort(before, { signal }) : before); // `before` never rejects
      return release;
    } catch (err) {
      void before.then(release);
      throw err;
    }
  }

  /** Runs `fn` as the only holder; releases when it settles. Waiting ends when `signal` aborts. */
  async run<T>(fn: () => Promise<T>, options: AbortOptions = {}): Promise<T> {
    const release = await this.acquire(options);
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
