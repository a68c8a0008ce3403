/**
 * Peers that recently failed, banned with exponential backoff: 15 s after the first failure,
 * doubling with every consecutive failure (capped), reset by a success. A peer that failed stays
 * *suspect* for a while after its ban ends (10 min by default, or until a success): routing goes
 * around suspects while other servers cover the blocks (`routeAround`), so that a swarm whose table
 * still lists servers that died minutes ago (their records have not expired) does not spend a
 * step's retries on them one after another once their bans lapse; they are still used when
 * nothing else covers the blocks.
 * @module
 */
import { PlumiseError } from "../../errors.ts";

export interface BanListOptions {
  /** First ban in ms (default 15 000). */
  readonly initialMs?: number;
  /** Growth per consecutive failure (default 2). */
  readonly factor?: number;
  /** Longest ban in ms (default 15 min). */
  readonly maxMs?: number;
  /** How long a peer stays suspect after its last failure, in ms (default 10 min). */
  readonly suspectMs?: number;
  readonly now?: () => number;
}

interface Ban {
  failures: number;
  until: number;
  /** When it last failed. */
  last: number;
}

export class BanList {
  readonly #initialMs: number;
  readonly #factor: number;
  readonly #maxMs: number;
  readonly #suspectMs: number;
  readonly #now: () => number;
  readonly #bans = new Map<string, Ban>();

  constructor(options: BanListOptions = {}) {
    this.#initialMs = options.initialMs ?? 15_000;
    this.#factor = options.factor ?? 2;
    this.#maxMs = options.maxMs ?? 15 * 60_000;
    this.#suspectMs = options.suspectMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Bans `peerId` after a failure; returns the ban length in ms. */
  ban(peerId: string): number {
    const b = this.#bans.get(peerId);
    const failures = (b?.failures ?? 0) + 1;
    const ms = Math.min(this.#maxMs, this.#initialMs * this.#factor ** (failures - 1));
    const now = this.#now();
    this.#bans.set(peerId, { failures, until: now + ms, last: now });
    return ms;
  }

  /** Forgets the failures of `peerId` (after a successful request). */
  succeed(peerId: string): void {
    this.#bans.delete(peerId);
  }

  isBanned(peerId: string): boolean {
    const b = this.#bans.get(peerId);
    return b !== undefined && this.#now() < b.until;
  }

  /** Whether `peerId` failed within `suspectMs` (and has not succeeded since); a banned peer is suspect. */
  isSuspect(peerId: string): boolean {
    const b = this.#bans.get(peerId);
    return b !== undefined && this.#now() < Math.max(b.until, b.last + this.#suspectMs);
  }

  /**
   * Runs `route` skipping suspects; when that leaves blocks uncovered (`MISSING_BLOCKS`), runs it
   * again skipping only banned peers (whose error, if any, is the one thrown).
   */
  routeAround<T>(route: (skip: (peerId: string) => boolean) => T): T {
    try {
      return route((p) => this.isSuspect(p));
    } catch (err) {
      if (!(err instanceof PlumiseError && err.code === "MISSING_BLOCKS")) throw err;
      return route((p) => this.isBanned(p));
    }
  }

  /** Consecutive failures recorded for `peerId`. */
  failures(peerId: string): number {
    return this.#bans.get(peerId)?.failures ?? 0;
  }

  /** Peers banned right now. */
  banned(): string[] {
    return [...this.#bans.keys()].filter((p) => this.isBanned(p));
  }
}
