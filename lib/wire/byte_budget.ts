/**
 * `ByteBudget`: bytes held across many holders, up to a bound in all and a smaller one per key (a
 * remote peer). The swarm's stream readers take from one process-wide budget for the bytes of
 * frames not yet complete (`PENDING_FRAME_BUDGET`), and the direct path's connections from one of
 * their own (`DIRECT_FRAME_BUDGET`), so peers that each send part of a large frame, over many
 * streams or connections, cannot make the process hold more than that in all, nor one peer more
 * than its share: past either a stream or connection is dropped instead of the process running out
 * of memory.
 * @module
 */
import { ConfigError } from "../errors.ts";

export class ByteBudget {
  readonly max: number;
  readonly maxPerKey: number;
  #held = 0;
  readonly #byKey = new Map<string, number>();

  constructor(max: number, maxPerKey = max) {
    for (const [what, v] of [["max", max], ["maxPerKey", maxPerKey]] as const) {
      if (!(Number.isSafeInteger(v) && v > 0)) {
        throw new ConfigError("BAD_INPUT", `a byte budget's ${what} must be an integer > 0, got ${v}`, {
          hint: "pass a number of bytes",
        });
      }
    }
    this.max = max;
    this.maxPerKey = Math.min(maxPerKey, max);
  }

  /** Bytes held now (by `key`, or in all). */
  held(key?: string): number {
    return key === undefined ? this.#held : this.#byKey.get(key) ?? 0;
  }

  /** Takes `n` bytes for `key` if they fit both bounds; false (nothing taken) when they do not. */
  take(n: number, key = ""): boolean {
    const mine = this.#byKey.get(key) ?? 0;
    if (this.#held + n > this.max || mine + n > this.maxPerKey) return false;
    this.#held += n;
    this.#byKey.set(key, mine + n);
    return true;
  }

  /** Gives back `n` bytes `key` took before. */
  give(n: number, key = ""): void {
    const mine = this.#byKey.get(key) ?? 0;
    const back = Math.min(n, mine);
    this.#held -= back;
    if (mine - back > 0) this.#byKey.set(key, mine - back);
    else this.#byKey.delete(key);
  }
}

/**
 * One holder's part of a budget (a stream, a connection): `hold(bytes)` takes or gives back so
 * that what it has taken is what it holds beyond `FREE_PENDING_BYTES`, or refuses (nothing
 * changed) when the budget cannot give that much; `release()` gives everything back.
 */
export class BudgetShare {
  #taken = 0;

  constructor(readonly budget: ByteBudget, readonly key: string) {}

  hold(bytes: number): boolean {
    const want = Math.max(0, bytes - FREE_PENDING_BYTES);
    if (want > this.#taken && !this.budget.take(want - this.#taken, this.key)) return false;
    if (want < this.#taken) this.budget.give(this.#taken - want, this.key);
    this.#taken = want;
    return true;
  }

  release(): void {
    this.budget.give(this.#taken, this.key);
    this.#taken = 0;
  }
}

/**
 * The bytes of incomplete frames all swarm streams of this process may hold together (room for
 * every session of a full server to send a large prefill chunk at once), and one peer's share.
 */
export const PENDING_FRAME_BUDGET: ByteBudget = new ByteBudget(1024 * 1024 * 1024, 256 * 1024 * 1024);

/**
 * Bytes of an incomplete frame a stream holds without taking from the budget: requests (an info or
 * table request, a record) go through when the budget is full. Streams per connection are bounded
 * (`SwarmPeer.handle`), so what this leaves uncounted is bounded per connection too.
 */
export const FREE_PENDING_BYTES = 16 * 1024;

/**
 * What the direct path's server connections may hold together, in the isolate that serves them
 * (the runtime Worker): bytes of frames not yet complete and frames read ahead, not yet handled;
 * a share per client address (lib/wire/direct_channel.ts). With `PUNCHED_FRAME_BUDGET` a server
 * holds 1 GiB at most.
 */
export const DIRECT_FRAME_BUDGET: ByteBudget = new ByteBudget(768 * 1024 * 1024, 256 * 1024 * 1024);

/**
 * The same for direct paths punched through NATs (lib/swarm/punch_session.ts), which the main
 * thread serves: each isolate has its own module instance, so one budget would count twice.
 */
export const PUNCHED_FRAME_BUDGET: ByteBudget = new ByteBudget(256 * 1024 * 1024, 64 * 1024 * 1024);
