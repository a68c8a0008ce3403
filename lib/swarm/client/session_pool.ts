/**
 * `SessionPool`: reuses the swarm sessions of finished generations for the next ones. Opening a
 * session through the swarm costs more than a short generation's decode: a stream and a direct
 * connection per server, the links between servers, the servers' session bookkeeping, and the
 * same again to close it (docs/benchmarks.md, "What a request costs"). A session whose generation
 * ended cleanly is kept open for a few seconds instead; the next generation that fits in it takes
 * it, and its first step starts from position 0, which rolls every server's cache back (the same
 * rollback `startFromPosition` gives any step), so the new generation sees an empty session.
 *
 * Kept only while it should still be open on the servers: a lease whose step failed, was aborted
 * or is still running when it closes, is closed for real; a session idle (since its last step, as
 * the servers count it) for `idleMs` goes (below the servers' least idle timeout,
 * `SESSION_IDLE_TIMEOUT` ≥ 10 s), and any session after `maxAgeMs` (far below their 30-minute age
 * cap), so that a server does not end a pooled session under its client for idleness or age
 * (which would count as that server's failure). A session is not reused when its caller says so
 * (`usable`: e.g. a server of its route banned or suspect since, a remote known closed), nor for a
 * generation of less than a quarter of its length (it would keep that much cache reserved). A
 * server that stops or moves its span while a session waits fails that session's next step like
 * any failure: the client bans it and replays the (empty) history elsewhere.
 * @module
 */
import { ConfigError, SwarmError } from "../../errors.ts";
import type { Hidden } from "./types.ts";

/** What the pool needs of a session (`SwarmInferenceSession` fits). */
export interface PoolableSession {
  readonly position: number;
  readonly maxLength: number;
  readonly batch: number;
  readonly closed: boolean;
  step(hidden: Hidden, options?: { startFromPosition?: number; signal?: AbortSignal }): Promise<Hidden>;
  close(): Promise<void>;
}

export interface SessionPoolOptions<S extends PoolableSession> {
  /** Opens a fresh session (routed and opened by its first step). */
  open(maxLength: number, batch: number): S;
  /** Whether an idle session may still be used (e.g. none of its servers is banned); default yes. */
  usable?(session: S): boolean;
  /**
   * Most idle sessions kept (default 8; 0 turns reuse off): each holds its cache reservation on
   * its servers while it waits.
   */
  readonly maxIdle?: number;
  /** An idle session is closed after this long (default 5 s). */
  readonly idleMs?: number;
  /** A session is not reused once this old (default 60 s). */
  readonly maxAgeMs?: number;
  readonly now?: () => number;
}

export interface SessionPoolStats {
  /** Sessions opened for a lease. */
  opened: number;
  /** Leases served by an idle session. */
  reused: number;
  /** Idle sessions closed (expired, unusable, over the limit, the pool stopping). */
  retired: number;
}

interface Idle<S> {
  readonly session: S;
  readonly openedAt: number;
  readonly since: number;
}

/** An idle session serves a lease asking for at least 1 / OVERSIZE of its `maxLength`. */
const OVERSIZE = 4;

export class SessionPool<S extends PoolableSession> {
  readonly stats: SessionPoolStats = { opened: 0, reused: 0, retired: 0 };
  readonly #o: SessionPoolOptions<S>;
  readonly #idle: Idle<S>[] = [];
  readonly #maxIdle: number;
  readonly #idleMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(options: SessionPoolOptions<S>) {
    this.#o = options;
    this.#maxIdle = options.maxIdle ?? 8;
    this.#idleMs = options.idleMs ?? 5_000;
    this.#maxAgeMs = options.maxAgeMs ?? 60_000;
    this.#now = options.now ?? (() => performance.now());
    for (
      const [name, v] of [["maxIdle", this.#maxIdle], ["idleMs", this.#idleMs], ["maxAgeMs", this.#maxAgeMs]]
    ) {
      if (!(typeof v === "number" && Number.isInteger(v) && v >= 0)) {
        throw new ConfigError("CONFIG_INVALID", `session pool: ${name} must be an integer ≥ 0, got ${v}`, {
          hint: `pass ${name} as a whole number (0 or more)`,
        });
      }
    }
  }

  /** Idle sessions held now. */
  get idle(): number {
    return this.#idle.length;
  }

  /**
   * A session for a generation of at most `maxLength` tokens: an idle one that holds that many
   * (the smallest such), else a new one. Close the lease when done; it goes back if still sound.
   */
  lease(maxLength: number, batch = 1): LeasedSession<S> {
    this.sweep();
    let best = -1;
    for (let i = 0; i < this.#idle.length; i++) {
      const s = this.#idle[i].session;
      // not one far larger than asked: it would keep that much cache reserved for a short generation
      if (s.batch !== batch || s.maxLength < maxLength || s.maxLength > OVERSIZE * maxLength) continue;
      if (best < 0 || s.maxLength < this.#idle[best].session.maxLength) best = i;
    }
    if (best >= 0) {
      const [entry] = this.#idle.splice(best, 1);
      if (this.#o.usable?.(entry.session) ?? true) {
        this.stats.reused++;
        return new LeasedSession(
          entry.session,
          entry.openedAt,
          entry.since,
          this.#now,
          (l) => this.#release(l),
        );
      }
      this.#retire(entry.session);
      return this.lease(maxLength, batch);
    }
    const session = this.#o.open(maxLength, batch);
    this.stats.opened++;
    return new LeasedSession(session, this.#now(), undefined, this.#now, (l) => this.#release(l));
  }

  /** Closes the idle sessions that expired (called by the timer and by every lease). */
  sweep(): void {
    const now = this.#now();
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const e = this.#idle[i];
      if (this.#expired(e, now)) {
        this.#idle.splice(i, 1);
        this.#retire(e.session);
      }
    }
  }

  /** Sweeps every second. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setInterval(() => this.sweep(), Math.max(50, Math.min(1_000, this.#idleMs)));
    Deno.unrefTimer(this.#timer);
  }

  /** Closes every idle session; leases closed later close their sessions. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const idle = this.#idle.splice(0);
    this.stats.retired += idle.length;
    await Promise.all(idle.map((e) => e.session.close().catch(() => {})));
  }

  /** Idle for `idleMs` since its last step, `maxAgeMs` old, or closed: not to be used again. */
  #expired(e: Idle<S>, now: number): boolean {
    return now - e.since >= this.#idleMs || now - e.openedAt >= this.#maxAgeMs || e.session.closed;
  }

  #retire(session: S): void {
    this.stats.retired++;
    session.close().catch(() => {});
  }

  async #release(lease: LeasedSession<S>): Promise<void> {
    // idle since its last step, as its servers count it (not since the generation was given back)
    const e: Idle<S> = { session: lease.session, openedAt: lease.openedAt, since: lease.lastActive };
    const keep = lease.sound && !this.#stopped && this.#maxIdle > 0 && !this.#expired(e, this.#now());
    if (!keep) return await e.session.close();
    this.#idle.push(e);
    if (this.#idle.length > this.#maxIdle) this.#retire(this.#idle.shift()!.session);
  }
}

/**
 * One generation's use of a pooled session: starts at position 0 (its first step rolls the
 * servers' caches back), and on `close` goes back to the pool if every step it ran succeeded.
 */
export class LeasedSession<S extends PoolableSession> {
  readonly session: S;
  /** When the session was opened (the pool's clock). */
  readonly openedAt: number;
  /** Whether the session served an earlier lease. */
  readonly reused: boolean;
  readonly #release: (l: LeasedSession<S>) => Promise<void>;
  readonly #now: () => number;
  #lastActive: number;
  #fresh = true;
  #failed = false;
  #running = 0;
  #closed = false;

  /** `idleSince`: when a reused session last stepped (undefined: a new session). */
  constructor(
    session: S,
    openedAt: number,
    idleSince: number | undefined,
    now: () => number,
    release: (l: LeasedSession<S>) => Promise<void>,
  ) {
    this.session = session;
    this.openedAt = openedAt;
    this.reused = idleSince !== undefined;
    this.#lastActive = idleSince ?? openedAt;
    this.#now = now;
    this.#release = release;
  }

  /** When the session's last step ended (the pool's clock), or when it was opened. */
  get lastActive(): number {
    return this.#lastActive;
  }

  /** Tokens in this generation's cache (0 until the first step). */
  get position(): number {
    return this.#fresh ? 0 : this.session.position;
  }

  get maxLength(): number {
    return this.session.maxLength;
  }

  /** Every step succeeded and none is running: the session may serve another lease. */
  get sound(): boolean {
    return !this.#failed && this.#running === 0;
  }

  async step(
    hidden: Hidden,
    options: { startFromPosition?: number; signal?: AbortSignal } = {},
  ): Promise<Hidden> {
    if (this.#closed) {
      throw new SwarmError("SESSION_CLOSED", "this generation's session was given back", {
        hint: "lease a new session for the next generation",
      });
    }
    const first = this.#fresh;
    this.#fresh = false;
    this.#running++;
    try {
      const out = await this.session.step(hidden, {
        signal: options.signal,
        startFromPosition: first ? 0 : options.startFromPosition,
      });
      this.#lastActive = this.#now();
      return out;
    } catch (err) {
      this.#failed = true;
      throw err;
    } finally {
      this.#running--;
    }
  }

  /** Gives the session back (or closes it). Idempotent; never throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#release(this).catch(() => {});
  }
}
