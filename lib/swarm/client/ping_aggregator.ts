/**
 * Client→server round-trip times, smoothed with an exponential moving average (α = 0.2 by
 * default); a failed ping counts as Infinity; entries expire (default 300 s) so stale numbers do
 * not steer routing. Feeds `clientRttMs` of the inference router.
 * @module
 */
import { errorMessage } from "../../errors.ts";
import { withTimeout } from "../../util/abort.ts";
import { type Logger, silentLogger } from "../../util/logger.ts";

export interface PingAggregatorOptions {
  /** EMA weight of a new sample, (0, 1]. */
  readonly alpha?: number;
  /** Entries older than this are forgotten (ms). */
  readonly expiryMs?: number;
  readonly now?: () => number;
  readonly logger?: Logger;
}

interface Entry {
  rttMs: number;
  at: number;
}

export class PingAggregator {
  readonly #alpha: number;
  readonly #expiryMs: number;
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();

  constructor(options: PingAggregatorOptions = {}) {
    this.#alpha = options.alpha ?? 0.2;
    if (!(this.#alpha > 0 && this.#alpha <= 1)) {
      throw new RangeError(`alpha must be in (0, 1], got ${options.alpha}`);
    }
    this.#expiryMs = options.expiryMs ?? 300_000;
    this.#now = options.now ?? Date.now;
    this.#log = options.logger ?? silentLogger;
  }

  /** Adds one RTT sample in ms (Infinity = failed). */
  observe(peerId: string, rttMs: number): void {
    if (Number.isNaN(rttMs) || rttMs < 0) return;
    const now = this.#now();
    const old = this.#fresh(peerId, now);
    let value: number;
    if (!old || !Number.isFinite(old.rttMs) || !Number.isFinite(rttMs)) value = rttMs;
    else value = this.#alpha * rttMs + (1 - this.#alpha) * old.rttMs;
    this.#entries.set(peerId, { rttMs: value, at: now });
  }

  /** Records a failed ping (RTT = Infinity until a success replaces it). */
  fail(peerId: string): void {
    this.observe(peerId, Infinity);
  }

  /** The smoothed RTT in ms, undefined when unknown or expired. */
  rtt(peerId: string): number | undefined {
    return this.#fresh(peerId, this.#now())?.rttMs;
  }

  #fresh(peerId: string, now: number): Entry | undefined {
    const e = this.#entries.get(peerId);
    if (!e) return undefined;
    if (now - e.at > this.#expiryMs) {
      this.#entries.delete(peerId);
      return undefined;
    }
    return e;
  }

  /**
   * Pings `peers` concurrently with `ping` (each bounded by `timeoutMs`, default 2000) and records the
   * results. Never throws: failures become Infinity.
   */
  async measure<P extends { peerId: string }>(
    peers: readonly P[],
    ping: (peer: P, options: { signal: AbortSignal }) => Promise<number>,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    await Promise.all(peers.map(async (p) => {
      try {
        const rtt = await withTimeout(options.timeoutMs ?? 2000, (s) => ping(p, { signal: s }), {
          signal: options.signal,
        });
        this.observe(p.peerId, rtt);
      } catch (err) {
        if (options.signal?.aborted) return;
        this.#log.debug("ping failed", { peer: p.peerId, error: errorMessage(err) });
        this.fail(p.peerId);
      }
    }));
  }
}
