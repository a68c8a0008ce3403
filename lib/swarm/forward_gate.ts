/**
 * `ForwardGate`: admission of `/plumise/forward/1.0.0` requests on the swarm side, before the
 * runtime. At most `maxConcurrent` forwards are in the runtime at once, so the runtime's queue
 * (the Worker's, where inference steps go first) never holds more of them and an inference step
 * waits behind at most that many; at most `maxQueued` more wait here, in arrival order; beyond
 * that a request is refused at once (`BUSY`). A waiting request leaves the queue without reaching
 * the runtime when its deadline passes (`TIMEOUT`: the requester's own timeout, capped by the
 * server's) or when its requester gives up (its stream is reset). See docs/protocol.md.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { TimeoutError } from "../errors.ts";
import { withDefaults } from "../util/with_defaults.ts";
import { protocolError } from "../wire/mod.ts";

export interface ForwardLimits {
  /** Forwards in the runtime at once (`FORWARD_MAX_CONCURRENT`). */
  maxConcurrent: number;
  /** Forwards waiting for a slot (`FORWARD_MAX_QUEUED`); 0 refuses every one that cannot start. */
  maxQueued: number;
  /** The longest a forward may take from arrival to reply (requesters may ask for less). */
  timeoutMs: number;
}

export const DEFAULT_FORWARD_LIMITS: Readonly<ForwardLimits> = Object.freeze({
  maxConcurrent: 2,
  maxQueued: 16,
  timeoutMs: 120_000,
});

interface Waiter {
  readonly deadline: number;
  readonly resolve: (release: () => void) => void;
  readonly reject: (err: unknown) => void;
  readonly timer: ReturnType<typeof setTimeout>;
  readonly signal?: AbortSignal;
  readonly onAbort: () => void;
}

/** Counts of forwards that never reached the runtime, by why. */
export interface ForwardGateStats {
  busy: number;
  expired: number;
  abandoned: number;
}

export class ForwardGate {
  readonly limits: Readonly<ForwardLimits>;
  readonly stats: ForwardGateStats = { busy: 0, expired: 0, abandoned: 0 };
  readonly #now: () => number;
  readonly #queue: Waiter[] = [];
  #running = 0;

  constructor(limits: Partial<ForwardLimits> = {}, options: { now?: () => number } = {}) {
    const l = withDefaults(DEFAULT_FORWARD_LIMITS, limits);
    for (const [k, min] of [["maxConcurrent", 1], ["maxQueued", 0], ["timeoutMs", 1]] as const) {
      if (!Number.isSafeInteger(l[k]) || l[k] < min) {
        throw new RangeError(`forward limit ${k} must be an integer ≥ ${min}, got ${l[k]}`);
      }
    }
    this.limits = Object.freeze(l);
    this.#now = options.now ?? Date.now;
  }

  /** Forwards in the runtime now. */
  get running(): number {
    return this.#running;
  }
  /** Forwards waiting for a slot now. */
  get queued(): number {
    return this.#queue.length;
  }
  /** The gate's clock (deadlines are on it). */
  now(): number {
    return this.#now();
  }

  /** The deadline of a request that arrived now and asked for `requestedMs` (capped by the server's). */
  deadline(requestedMs?: number): number {
    return this.#now() + Math.min(requestedMs ?? this.limits.timeoutMs, this.limits.timeoutMs);
  }

  /**
   * Waits for a slot; resolves with the function that frees it (call it once the runtime is done).
   * Rejects at once with `BUSY` when the queue is full; with `TIMEOUT` when `deadline` passes
   * first; with `options.signal`'s reason when it aborts first (the requester gave up).
   */
  acquire(deadline: number, { signal }: AbortOptions = {}): Promise<() => void> {
    if (signal?.aborted) {
      this.stats.abandoned++;
      return Promise.reject(signal.reason);
    }
    if (this.#running < this.limits.maxConcurrent && this.#queue.length === 0) {
      return Promise.resolve(this.#take());
    }
    if (this.#queue.length >= this.limits.maxQueued) {
      this.stats.busy++;
      return Promise.reject(protocolError(
        "BUSY",
        `this server runs ${this.#running} forward requests and has ${this.#queue.length} waiting (the limits)`,
      ));
    }
    return new Promise<() => void>((resolve, reject) => {
      const w: Waiter = {
        deadline,
        resolve,
        reject,
        signal,
        timer: setTimeout(() => this.#expire(w), Math.max(0, deadline - this.#now())),
        onAbort: () => {
          if (!this.#remove(w)) return;
          this.stats.abandoned++;
          reject(signal!.reason);
        },
      };
      signal?.addEventListener("abort", w.onAbort, { once: true });
      this.#queue.push(w);
    });
  }

  #take(): () => void {
    this.#running++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#running--;
      this.#pump();
    };
  }

  #pump(): void {
    while (this.#running < this.limits.maxConcurrent && this.#queue.length) {
      const w = this.#queue[0];
      if (this.#now() >= w.deadline) {
        this.#expire(w);
        continue;
      }
      this.#remove(w);
      w.resolve(this.#take());
    }
  }

  #expire(w: Waiter): void {
    if (!this.#remove(w)) return;
    this.stats.expired++;
    w.reject(
      new TimeoutError("the forward request waited past its deadline for a free slot", {
        hint: "this server is busy with other forward requests; retry on another server",
      }),
    );
  }

  /** Takes `w` off the queue (its timer and abort listener too); false when it was not there. */
  #remove(w: Waiter): boolean {
    const i = this.#queue.indexOf(w);
    if (i < 0) return false;
    this.#queue.splice(i, 1);
    clearTimeout(w.timer);
    w.signal?.removeEventListener("abort", w.onAbort);
    return true;
  }
}
