/**
 * Server-side inference sessions: the concurrency limit, cache reserved at open (or refused
 * at once), the idle timeout and the age cap. Each managed session carries an AbortSignal
 * that fires when it expires, so its stream handler stops waiting and frees everything.
 * @module
 */
import type { BlockRuntime, InferenceSession } from "../runtime/types.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { withDefaults } from "../util/with_defaults.ts";
import { TimeoutError } from "../errors.ts";
import { protocolError } from "../wire/mod.ts";

export interface SessionLimits {
  /** Most concurrent sessions (default 64). */
  maxSessions: number;
  /** Closed after this long without a step (default 5 min). */
  idleMs: number;
  /** Closed this long after opening, whatever happens (default 30 min). */
  maxAgeMs: number;
  /**
   * Most sessions one client (peer id) may hold at once (default `perClientLimit(maxSessions)`: a
   * quarter of the slots stays free for the others), so one client cannot lock the server out.
   */
  maxPerClient?: number;
}

/** The default per-client cap: every slot but a quarter of them (all of them below 4 slots). */
export function perClientLimit(maxSessions: number): number {
  return Math.max(1, maxSessions - Math.floor(maxSessions / 4));
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = Object.freeze({
  maxSessions: 64,
  idleMs: 300_000,
  maxAgeMs: 1_800_000,
});

export interface ManagedSession {
  readonly id: string;
  /** The client that opened it (its peer id; "" when unknown). */
  readonly client: string;
  readonly session: InferenceSession;
  readonly openedAt: number;
  lastActive: number;
  /** Aborts (with a TimeoutError) when the session is idle too long or too old. */
  readonly signal: AbortSignal;
}

export interface SessionManagerOptions {
  runtime: BlockRuntime;
  limits?: Partial<SessionLimits>;
  logger?: Logger;
  now?: () => number;
}

export class SessionManager {
  readonly limits: SessionLimits;
  readonly #runtime: BlockRuntime;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #sessions = new Map<string, ManagedSession & { controller: AbortController }>();
  /** Ids whose runtime sessions are being opened. */
  readonly #opening = new Set<string>();
  /** Sessions open or being opened, per client. */
  readonly #perClient = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: SessionManagerOptions) {
    this.#runtime = options.runtime;
    this.limits = withDefaults(DEFAULT_SESSION_LIMITS, options.limits);
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  get count(): number {
    return this.#sessions.size;
  }

  /** Starts the sweeper (period: a tenth of the idle timeout, 50 ms..10 s). */
  start(): void {
    if (this.#timer) return;
    const period = Math.max(
      50,
      Math.min(10_000, Math.floor(Math.min(this.limits.idleMs, this.limits.maxAgeMs) / 10)),
    );
    this.#timer = setInterval(() => this.sweep(), period);
  }

  /**
   * Opens a session for `client` (the peer id; "" is nobody's and not capped) or throws
   * SESSION_LIMIT / the runtime's CACHE_FULL, BAD_SPAN...
   */
  async open(
    request: { sessionId: string; start: number; end: number; maxLength: number; batch: number },
    client = "",
  ) {
    // an id being opened counts as open: two opens of one id at once would otherwise both reach the
    // runtime, and the second would overwrite the first, whose session nothing could close
    if (this.#sessions.has(request.sessionId) || this.#opening.has(request.sessionId)) {
      throw protocolError("BAD_FRAME", `session ${request.sessionId} is already open on this server`);
    }
    if (this.#sessions.size + this.#opening.size >= this.limits.maxSessions) {
      throw protocolError("SESSION_LIMIT", `server has ${this.limits.maxSessions} sessions open (the limit)`);
    }
    const held = this.#perClient.get(client) ?? 0;
    const cap = this.limits.maxPerClient ?? perClientLimit(this.limits.maxSessions);
    if (client !== "" && held >= cap) {
      throw protocolError(
        "SESSION_LIMIT",
        `client ${client} holds ${held} of this server's ${this.limits.maxSessions} sessions, the most one ` +
          "client may hold",
      );
    }
    this.#opening.add(request.sessionId);
    this.#perClient.set(client, held + 1);
    let session: InferenceSession;
    try {
      session = await this.#runtime.openSession(request);
    } catch (err) {
      this.#release(client);
      throw err;
    } finally {
      this.#opening.delete(request.sessionId);
    }
    const now = this.#now();
    const controller = new AbortController();
    const m = {
      id: request.sessionId,
      client,
      session,
      openedAt: now,
      lastActive: now,
      signal: controller.signal,
      controller,
    };
    this.#sessions.set(m.id, m);
    return m as ManagedSession;
  }

  touch(m: ManagedSession): void {
    m.lastActive = this.#now();
  }

  /** Closes sessions that are idle or too old; returns their ids. */
  sweep(): string[] {
    const now = this.#now();
    const out: string[] = [];
    for (const m of this.#sessions.values()) {
      const idle = now - m.lastActive >= this.limits.idleMs;
      const old = now - m.openedAt >= this.limits.maxAgeMs;
      if (!idle && !old) continue;
      out.push(m.id);
      const why = idle ? `idle for ${now - m.lastActive} ms` : `open for ${now - m.openedAt} ms (age cap)`;
      this.#logger.info("closing expired session", { sessionId: m.id, why });
      m.controller.abort(new TimeoutError(`session ${m.id} closed: ${why}`, { hint: "open a new session" }));
      void this.close(m);
    }
    return out;
  }

  /** Frees a session (idempotent). */
  async close(m: ManagedSession): Promise<void> {
    if (this.#sessions.get(m.id) !== m) return;
    this.#sessions.delete(m.id);
    this.#release(m.client);
    try {
      await m.session.close();
    } catch (err) {
      this.#logger.warn("closing a runtime session failed", { sessionId: m.id, err });
    }
  }

  #release(client: string): void {
    const n = (this.#perClient.get(client) ?? 1) - 1;
    if (n > 0) this.#perClient.set(client, n);
    else this.#perClient.delete(client);
  }

  /** Closes every session and stops the sweeper. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const all = [...this.#sessions.values()];
    for (const m of all) m.controller.abort(new TimeoutError(`session ${m.id} closed: server stopping`));
    await Promise.all(all.map((m) => this.close(m)));
  }
}
