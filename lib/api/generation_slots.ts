/**
 * The HTTP API's generation slots: at most `limit` generations at once (one more gets 429), each
 * with its own deadline and abort, and the drain at shutdown (new generations get 503, running ones
 * get a grace period, then they are aborted).
 * @module
 */
import { ApiError, ConfigError, UnavailableError } from "../errors.ts";
import { timeoutSignal } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";

/** One taken generation slot. */
export interface Slot {
  /** Aborts on the request timeout, at shutdown, or on `abort()` (a streamed response's client went away). */
  readonly signal: AbortSignal;
  /** Frees the slot (idempotent). */
  readonly release: () => void;
  readonly abort: (reason: unknown) => void;
}

export interface GenerationSlotsOptions {
  /** Generations at once (≥ 1). */
  readonly limit: number;
  /** Deadline of one generation from the moment its slot is taken, in ms. */
  readonly timeoutMs: number;
  /** Whether generation can run at all now (false while the node loads: 503 LOADING). */
  readonly ready: () => boolean;
  readonly log: Logger;
}

export class GenerationSlots {
  readonly #o: GenerationSlotsOptions;
  /** Aborted when the API shuts down: every running generation stops. */
  readonly #shutdown = new AbortController();
  #draining = false;
  #inFlight = 0;
  #idleWaiters: Array<() => void> = [];

  constructor(options: GenerationSlotsOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new ConfigError("API_OPTIONS", `maxConcurrent must be an integer ≥ 1, got ${options.limit}`, {
        hint: "allow at least one generation at a time",
      });
    }
    this.#o = options;
  }

  /** Generations being served right now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** True once `drain()` was called. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Throws the 503 of a draining API or a loading node (before any work is done for a request). */
  refuseUnlessOpen(): void {
    if (this.#draining) {
      throw new ApiError(503, "SHUTTING_DOWN", "the node is shutting down", {
        hint: "retry on another node",
      });
    }
    if (!this.#o.ready()) {
      throw new ApiError(503, "LOADING", "the model is still loading", {
        hint: 'retry in a few seconds; GET /health says status "ok" when ready',
      });
    }
  }

  /**
   * Takes a slot: 503 while draining or loading, 429 when all are taken. The caller must `release()` it.
   * `options.signal` is the client's: when it aborts (the client went away) the generation stops and,
   * once the caller releases it, the slot is free again.
   */
  take(options: { signal?: AbortSignal } = {}): Slot {
    this.refuseUnlessOpen();
    if (this.#inFlight >= this.#o.limit) {
      throw new ApiError(
        429,
        "TOO_MANY_REQUESTS",
        `${this.#inFlight} generations are running, the limit is ${this.#o.limit}`,
        { hint: "retry in a moment or use another node" },
      );
    }
    this.#inFlight++;
    const perRequest = new AbortController();
    const onShutdown = () => perRequest.abort(this.#shutdown.signal.reason);
    this.#shutdown.signal.addEventListener("abort", onShutdown, { once: true });
    const client = options.signal;
    const onClientGone = () =>
      perRequest.abort(new ApiError(499, "CLIENT_CLOSED", "the client closed the request"));
    if (client?.aborted) onClientGone();
    else client?.addEventListener("abort", onClientGone, { once: true });
    const timer = timeoutSignal(this.#o.timeoutMs, perRequest.signal);
    let released = false;
    return {
      signal: timer.signal,
      abort: (reason) => perRequest.abort(reason),
      release: () => {
        if (released) return;
        released = true;
        timer.clear();
        this.#shutdown.signal.removeEventListener("abort", onShutdown);
        client?.removeEventListener("abort", onClientGone);
        this.#inFlight--;
        if (this.#inFlight === 0) {
          const waiters = this.#idleWaiters;
          this.#idleWaiters = [];
          for (const w of waiters) w();
        }
      },
    };
  }

  /** Stops taking slots (503), waits up to `graceMs` for running generations, then aborts them. */
  async drain(graceMs: number): Promise<void> {
    this.#draining = true;
    await this.#idle(Math.max(0, graceMs));
    if (this.#inFlight > 0) {
      this.#o.log.warn("aborting generations still running after the grace period", {
        inFlight: this.#inFlight,
      });
    }
    this.#shutdown.abort(
      new UnavailableError("SHUTTING_DOWN", "the node is shutting down", { hint: "retry on another node" }),
    );
    // Aborted generations unwind promptly; wait for them (bounded) so no stream outlives the API.
    await this.#idle(2000);
  }

  /** Resolves when no generation runs, or after `ms`. */
  async #idle(ms: number): Promise<void> {
    if (this.#inFlight === 0) return;
    const { signal, clear } = timeoutSignal(ms);
    try {
      await new Promise<void>((resolve) => {
        this.#idleWaiters.push(resolve);
        signal.addEventListener("abort", () => resolve(), { once: true });
      });
    } finally {
      clear();
    }
  }
}
