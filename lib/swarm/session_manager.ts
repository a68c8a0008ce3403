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
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = Object.freeze({
  maxSessions: 64,
  idleMs: 300_000,
  maxAgeMs: 1_800_000,
});

export interface ManagedSession {
  readonly id: string;
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

  /** Opens a session or throws SESSION_LIMIT / the runtime's CACHE_FULL, BAD_SPAN... */
  async open(request: { sessionId: string; start: number; end: number; maxLength: number; batch: number }) {
    // an id being opened counts as open: two opens of one id at once would otherwise both reach the
    // runtime, and the second would overwrite the first, whose session nothing could close
    if (this.#sessions.has(request.sessionId) || this.#opening.has(request.sessionId)) {
      throw protocolError("BAD_FRAME", `session ${request.sessionId} is already open on this server`);
    }
    if (this.#sessions.size + this.#opening.size >= this.limits.maxSessions) {
      throw protocolError("SESSION_LIMIT", `server has ${this.limits.maxSessions} sessions open (the limit)`);
    }
    this.#opening.add(request.sessionId);
    let session: InferenceSession;
    try {
      session = await this.#runtime.openSession(request);
    } finally {
      this.#opening.delete(request.sessionId);
    }
    const now = this.#now();
    const controller = new AbortController();
    const m = {
      id: request.sessionId,
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
    try {
      await m.session.close();
    } catch (err) {
      this.#logger.warn("closing a runtime session failed", { sessionId: m.id, err });
    }
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
