/**
 * A periodic job with backoff: `run` every `intervalMs`; transient failures retry sooner with
 * exponential backoff (never faster than `backoff.initialMs`), refusals (reverts) wait a full
 * interval and are logged once per distinct reason — no error storms, no hot loops.
 * @module
 */
import { errorMessage } from "../errors.ts";
import { isAbort, sleep } from "../util/abort.ts";
import { Backoff, type BackoffOptions } from "../util/backoff.ts";
import type { Logger } from "../util/logger.ts";
import { isTransient } from "./_rpc_errors.ts";

export interface PeriodicTaskOptions {
  name: string;
  intervalMs: number;
  /** Delay before the first run (default: intervalMs). */
  initialDelayMs?: number;
  run: (options: { signal: AbortSignal }) => Promise<void>;
  logger: Logger;
  backoff?: BackoffOptions;
}

export class PeriodicTask {
  readonly #o: PeriodicTaskOptions;
  #controller: AbortController | undefined;
  #loop: Promise<void> | undefined;
  #lastRefusal = "";
  runs = 0;
  failures = 0;

  constructor(options: PeriodicTaskOptions) {
    if (!(options.intervalMs > 0)) {
      throw new RangeError(`${options.name}: intervalMs must be > 0, got ${options.intervalMs}`);
    }
    this.#o = options;
  }

  start(): void {
    if (this.#loop) return;
    this.#controller = new AbortController();
    this.#loop = this.#run({ signal: this.#controller.signal });
  }

  async stop(): Promise<void> {
    this.#controller?.abort();
    await this.#loop;
  }

  async #run({ signal }: { signal: AbortSignal }): Promise<void> {
    const { name, intervalMs, logger } = this.#o;
    const backoff = new Backoff({
      initialMs: Math.min(5000, intervalMs),
      maxMs: intervalMs,
      ...this.#o.backoff,
    });
    let delay = this.#o.initialDelayMs ?? intervalMs;
    while (!signal.aborted) {
      try {
        await sleep(delay, { signal });
      } catch {
        break;
      }
      try {
        this.runs++;
        await this.#o.run({ signal });
        backoff.reset();
        this.#lastRefusal = "";
        delay = intervalMs;
      } catch (err) {
        // stopped while it ran: whatever the call threw (an RPC maps the abort to CHAIN_TIMEOUT),
        // it is not a failure of the task
        if (signal.aborted) break;
        this.failures++;
        const message = errorMessage(err);
        if (isTransient(err) || isAbort(err)) {
          delay = Math.min(backoff.next(), intervalMs);
          logger.warn(`${name} failed; retrying`, {
            error: message,
            retryInMs: delay,
            attempt: backoff.attempt,
          });
        } else {
          delay = intervalMs;
          if (message !== this.#lastRefusal) {
            logger.warn(`${name} refused`, { error: message, nextInMs: delay });
          } else logger.debug(`${name} refused again`, { error: message });
          this.#lastRefusal = message;
        }
      }
    }
  }
}
