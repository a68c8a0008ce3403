/**
 * `Mutex`: one user at a time, served in the order they asked (FIFO). `acquire()` resolves, once
 * every earlier holder has released, to the function that releases this hold; `run(fn)` holds it
 * for the duration of `fn`. Releasing twice is harmless. No timeouts: a holder must release.
 * @module
 */
export class Mutex {
  /** Settles once the last hold queued so far is released (never rejects). */
  #tail: Promise<void> = Promise.resolve();
  #held = 0;

  /** Whether someone holds it or waits for it. */
  get locked(): boolean {
    return this.#held > 0;
  }

  /** Waits for every earlier hold to be released; resolves to the release of this one. */
  async acquire(): Promise<() => void> {
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
    await before;
    return release;
  }

  /** Runs `fn` as the only holder; releases when it settles. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
