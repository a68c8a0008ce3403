/**
 * Peers that recently failed, banned with exponential backoff: 15 s after the first failure,
 * doubling with every consecutive failure (capped), reset by a success.
 * @module
 */

export interface BanListOptions {
  /** First ban in ms (default 15 000). */
  readonly initialMs?: number;
  /** Growth per consecutive failure (default 2). */
  readonly factor?: number;
  /** Longest ban in ms (default 15 min). */
  readonly maxMs?: number;
  readonly now?: () => number;
}

interface Ban {
  failures: number;
  until: number;
}

export class BanList {
  readonly #initialMs: number;
  readonly #factor: number;
  readonly #maxMs: number;
  readonly #now: () => number;
  readonly #bans = new Map<string, Ban>();

  constructor(options: BanListOptions = {}) {
    this.#initialMs = options.initialMs ?? 15_000;
    this.#factor = options.factor ?? 2;
    this.#maxMs = options.maxMs ?? 15 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Bans `peerId` after a failure; returns the ban length in ms. */
  ban(peerId: string): number {
    const b = this.#bans.get(peerId);
    const failures = (b?.failures ?? 0) + 1;
    const ms = Math.min(this.#maxMs, this.#initialMs * this.#factor ** (failures - 1));
    this.#bans.set(peerId, { failures, until: this.#now() + ms });
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

  /** Consecutive failures recorded for `peerId`. */
  failures(peerId: string): number {
    return this.#bans.get(peerId)?.failures ?? 0;
  }

  /** Peers banned right now. */
  banned(): string[] {
    return [...this.#bans.keys()].filter((p) => this.isBanned(p));
  }
}
