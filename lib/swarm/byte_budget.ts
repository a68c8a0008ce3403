/**
 * `ByteBudget`: bytes held across many holders, up to a bound. The swarm's stream readers take
 * from one process-wide budget for the bytes of frames not yet complete (`PENDING_FRAME_BUDGET`),
 * so peers that each send part of a large frame, over many streams, cannot make the process hold
 * more than that in all: past it a stream is refused (`BUSY`) instead of the process running out
 * of memory.
 * @module
 */

export class ByteBudget {
  readonly max: number;
  #held = 0;

  constructor(max: number) {
    if (!(Number.isSafeInteger(max) && max > 0)) {
      throw new RangeError(`a byte budget must be an integer > 0, got ${max}`);
    }
    this.max = max;
  }

  /** Bytes held now. */
  get held(): number {
    return this.#held;
  }

  /** Takes `n` bytes if they fit; false (nothing taken) when they do not. */
  take(n: number): boolean {
    if (this.#held + n > this.max) return false;
    this.#held += n;
    return true;
  }

  /** Gives back `n` bytes taken before. */
  give(n: number): void {
    this.#held = Math.max(0, this.#held - n);
  }
}

/**
 * The bytes of incomplete frames all swarm streams of this process may hold together: room for
 * every session of a full server to send a large prefill chunk at once.
 */
export const PENDING_FRAME_BUDGET: ByteBudget = new ByteBudget(1024 * 1024 * 1024);
