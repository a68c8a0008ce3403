/**
 * Peers that recently failed, banned with exponential backoff: 15 s after the first failure,
 * doubling with every consecutive failure (capped), reset by a success. A peer that failed stays
 * *suspect* for a while after its ban ends (10 min by default, or until a success): routing goes
 * around suspects while other servers cover the blocks (`routeAround`), so that a swarm whose table
 * still lists servers that died minutes ago (their records have not expired) does not spend a
 * step's retries on them one after another once their bans lapse; they are still used when
 * nothing else covers the blocks. So are banned peers, but only as *probes*: at most one route per
 * `probeMs` since the peer's last failure or probe, so that a swarm's only server for some blocks
 * that failed for a moment (a connection cut, a restart) is tried again within seconds instead of
 * failing every request for the length of its ban. A probe that fails is part of the same outage
 * (`ban`); one that succeeds lifts the ban (`succeed`).
 *
 * The list is bounded: a hostile or churning swarm can make a client fail against any number of peer
 * ids. A peer's record is forgotten once it has been neither banned nor suspect for `forgetMs`
 * (default: twice the longest ban or suspicion), and beyond `maxPeers` records the one that failed
 * longest ago goes first — even one still banned, which a flood of more failing ids than that
 * can therefore lift early. Each `ban` scans the records once (at most `maxPeers`).
 *
 * Refusals are not failures: a server that answers `TOO_LONG` takes shorter sessions, so it is not
 * banned. It is remembered for `suspectMs` with the shortest session length it refused (`refuse`),
 * and routes for sessions at least that long go around it while others cover the blocks: a server
 * that refuses everything costs each client one round trip per shorter length, not one per session.
 * The same bound (`maxPeers`, oldest first) keeps that memory small.
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
  /** How long a record outlives its ban and suspicion, in ms (default 2 × max(maxMs, suspectMs)). */
  readonly forgetMs?: number;
  /** Least time between two probes of a banned peer, or its last failure and a probe, in ms (default 1000). */
  readonly probeMs?: number;
  /** Most peers remembered (default 10 000). */
  readonly maxPeers?: number;
  readonly now?: () => number;
}

interface Ban {
  failures: number;
  until: number;
  /** When it last failed. */
  last: number;
  /** When a route last took it as a probe during this ban. */
  probed?: number;
}

/** A route: spans, each on one server. */
export type PeerRoute = readonly { readonly server: { readonly peerId: string } }[];

export class BanList {
  readonly #initialMs: number;
  readonly #factor: number;
  readonly #maxMs: number;
  readonly #suspectMs: number;
  readonly #now: () => number;
  readonly #forgetMs: number;
  readonly #maxPeers: number;
  readonly #probeMs: number;
  /** By last failure, oldest first (`ban` moves a peer to the end). */
  readonly #bans = new Map<string, Ban>();
  /** The shortest session length each peer refused, and when; oldest first. */
  readonly #refusals = new Map<string, { maxLength: number; at: number }>();

  constructor(options: BanListOptions = {}) {
    this.#initialMs = options.initialMs ?? 15_000;
    this.#factor = options.factor ?? 2;
    this.#maxMs = options.maxMs ?? 15 * 60_000;
    this.#suspectMs = options.suspectMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
    this.#forgetMs = options.forgetMs ?? 2 * Math.max(this.#maxMs, this.#suspectMs);
    this.#maxPeers = Math.max(1, options.maxPeers ?? 10_000);
    this.#probeMs = options.probeMs ?? 1_000;
  }

  /**
   * Bans `peerId` after a failure; returns how long it stays banned, in ms. A failure while the
   * peer is banned already is part of the same outage (the other sessions that were using it when
   * it failed): it does not lengthen the ban. Otherwise eight sessions cut by one broken connection
   * would ban a server for 2⁸ times the first ban at once.
   */
  ban(peerId: string): number {
    const b = this.#bans.get(peerId);
    const now = this.#now();
    let next: Ban;
    if (b && now < b.until) next = { ...b, last: now };
    else {
      const failures = (b?.failures ?? 0) + 1;
      const ms = Math.min(this.#maxMs, this.#initialMs * this.#factor ** (failures - 1));
      next = { failures, until: now + ms, last: now };
    }
    this.#bans.delete(peerId); // to the end: the map is in failure order
    this.#bans.set(peerId, next);
    this.#prune(now);
    return next.until - now;
  }

  /** Peers remembered (banned, suspect, or failed within `forgetMs` of either ending). */
  get size(): number {
    return this.#bans.size;
  }

  /** Drops records past `forgetMs`, then the oldest failures beyond `maxPeers` (the map is in failure order). */
  #prune(now: number): void {
    for (const [p, b] of this.#bans) {
      if (now >= Math.max(b.until, b.last + this.#suspectMs) + this.#forgetMs) this.#bans.delete(p);
    }
    for (const p of this.#bans.keys()) {
      if (this.#bans.size <= this.#maxPeers) break;
      this.#bans.delete(p);
    }
  }

  /** Remembers that `peerId` refused a session of `maxLength` tokens as too long (`TOO_LONG`). */
  refuse(peerId: string, maxLength: number): void {
    const now = this.#now();
    const before = this.refuses(peerId, Infinity) ? this.#refusals.get(peerId)!.maxLength : Infinity;
    this.#refusals.delete(peerId);
    this.#refusals.set(peerId, { maxLength: Math.min(before, maxLength), at: now });
    for (const [p, r] of this.#refusals) {
      if (this.#refusals.size <= this.#maxPeers && now < r.at + this.#suspectMs) break;
      this.#refusals.delete(p);
    }
  }

  /** Whether `peerId` refused a session no longer than `maxLength` within `suspectMs`. */
  refuses(peerId: string, maxLength: number): boolean {
    const r = this.#refusals.get(peerId);
    return r !== undefined && this.#now() < r.at + this.#suspectMs && maxLength >= r.maxLength;
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
   * Runs `route` skipping suspects (and, given the session's `maxLength`, the peers that refused as
   * long a session); when that leaves blocks uncovered (`MISSING_BLOCKS`), runs it again skipping
   * only banned peers (and those refusers); when that does too, once more skipping only the banned
   * peers whose probe is not due (whose error, if any, is the one thrown), and the banned peers that
   * route takes are marked as probed. A refuser that alone covers blocks is asked again: its answer
   * is what tells the session that its request is too long.
   */
  routeAround<T extends PeerRoute>(
    route: (skip: (peerId: string) => boolean) => T,
    maxLength = Infinity,
  ): T {
    try {
      return route((p) => this.isSuspect(p) || this.refuses(p, maxLength));
    } catch (err) {
      if (!missing(err)) throw err;
    }
    try {
      return route((p) => this.isBanned(p) || this.refuses(p, maxLength));
    } catch (err) {
      if (!missing(err)) throw err;
    }
    const now = this.#now();
    const r = route((p) => this.isBanned(p) && !this.#probeDue(p, now));
    for (const { server } of r) {
      const b = this.#bans.get(server.peerId);
      if (b && now < b.until) b.probed = now;
    }
    return r;
  }

  /** Whether banned `peerId` may be probed at `now`: `probeMs` since its last failure and last probe. */
  #probeDue(peerId: string, now: number): boolean {
    const b = this.#bans.get(peerId);
    return b !== undefined && now >= Math.max(b.last, b.probed ?? -Infinity) + this.#probeMs;
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

const missing = (err: unknown) => err instanceof PlumiseError && err.code === "MISSING_BLOCKS";
