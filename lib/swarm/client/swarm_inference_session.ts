/**
 * An inference session across several servers: routes `[start, end)` into spans, opens one
 * remote session per span, sends every step through the chain, and keeps per span the full
 * history of inputs it sent. When a server fails (timeout, reset, error frame, bad reply), it is
 * banned, exactly its range is re-routed (possibly into several pieces), the history is replayed
 * to the replacement as one step from position 0, and the step continues — the caller sees
 * nothing but a slower step. Retries are bounded; the final error says what failed.
 *
 * Where the transport can link sessions (direct paths, `SpanLinks`), neighbouring spans are
 * linked in the background as soon as both are open (during the first step, which relays), and
 * from then on a step is pushed server to server, the client sending it to the first span and
 * collecting one reply that carries every span's output (their input histories). A push that
 * fails anywhere is rerun span by span through the path above.
 *
 * This class coordinates; the parts live beside it (see session_state.ts for the list).
 * @module
 */
import { SwarmError } from "../../errors.ts";
import type { AbortOptions } from "../../util/abort.ts";
import { pushStep } from "./push_step.ts";
import { relayStep } from "./relay_step.ts";
import {
  type Flow,
  SessionState,
  type SessionStats,
  type SpanState,
  type SwarmInferenceSessionOptions,
  truncateHistory,
} from "./session_state.ts";
import { SpanLinker } from "./span_links.ts";
import { withRetries } from "./span_retries.ts";
import { SpanRouter } from "./span_routing.ts";
import type { Hidden, RouteSpan } from "./types.ts";

export type { SessionStats, SwarmInferenceSessionOptions } from "./session_state.ts";

export interface SessionStepOptions {
  /** Roll the whole chain back to this position first (default: the current position). */
  readonly startFromPosition?: number;
  readonly signal?: AbortSignal;
}

export class SwarmInferenceSession {
  readonly id: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly maxLength: number;
  readonly batch: number;
  readonly stats: SessionStats;
  readonly #s: SessionState;
  readonly #router: SpanRouter;
  readonly #links: SpanLinker;
  #hiddenSize: number | undefined;
  /** Step ids on the wire: one per `step` call, the same on every span (pushes carry it). */
  #stepSeq = 0;
  #busy = false;
  /** Ends each span's turn in the step in progress (see `SpanState.turn`). */
  #turns = new Map<SpanState, () => void>();

  constructor(options: SwarmInferenceSessionOptions) {
    const s = this.#s = new SessionState(options);
    this.#router = new SpanRouter(s);
    this.#links = new SpanLinker(s);
    this.id = s.id;
    this.model = s.model;
    this.start = s.start;
    this.end = s.end;
    this.maxLength = s.maxLength;
    this.batch = s.batch;
    this.stats = s.stats;
  }

  /** Tokens in the servers' caches. */
  get position(): number {
    return this.#s.position;
  }

  get closed(): boolean {
    return this.#s.closed;
  }

  /** The current chain of spans (servers known once routed). */
  get route(): RouteSpan[] {
    return this.#s.chain.filter((s) => s.server).map((s) => ({
      server: s.server!,
      start: s.start,
      end: s.end,
    }));
  }

  /** Whether a remote session of the route is known to be gone (its connection ended). */
  get stale(): boolean {
    return this.#s.chain.some((span) => span.remote?.closed === true);
  }

  /**
   * Neighbouring spans linked so far (their steps are pushed server to server): the links are made
   * in the background once both sessions are open, so this grows during the first steps.
   */
  get linkedHops(): number {
    return this.#links.linkedHops;
  }

  /** Routes and opens every span now (otherwise done by the first step). */
  async open({ signal }: AbortOptions = {}): Promise<void> {
    const s = this.#s;
    s.assertOpen();
    for (let i = 0; i < s.chain.length; i++) {
      await withRetries(s, this.#router, i, async (span) => {
        // nothing sent yet: a span routed here has an empty history, not one to take from upstream
        if (s.position === 0) span.history ??= [];
        if (!span.remote) await this.#router.openRemote(span, { signal });
      }, { signal });
    }
    // the caller prepares ahead: the links too, so that the first step already pushes
    this.#links.linkAhead();
    await Promise.all(s.chain.map((span) => span.linking));
  }

  /**
   * Runs `hidden [B, T, H]` through every block after the cached past and returns `[B, T, H]`.
   * Failures of servers are handled inside; throws only when retries are exhausted, when the
   * caller aborts, or on bad input.
   */
  async step(hidden: Hidden, options: SessionStepOptions = {}): Promise<Hidden> {
    const s = this.#s;
    s.assertOpen();
    if (this.#busy) {
      throw new SwarmError("STEP_IN_PROGRESS", `session ${this.id} is already running a step`, {
        hint: "await each step before sending the next",
      });
    }
    const [, t, h] = hidden.shape;
    const p = options.startFromPosition ?? s.position;
    this.#checkStep(hidden, p);
    const startsOver = p === 0 && s.position > 0;
    this.#busy = true;
    try {
      this.#hiddenSize = h;
      // spans that ran a step that later failed downstream hold extra inputs: forget them
      for (const span of s.chain) span.history = truncateHistory(span.history!, p);
      s.position = p;
      if (!s.routed) this.#router.openAhead(() => this.#links.linkAhead(), { signal: options.signal });
      else this.#links.linkAhead();
      const stepId = this.#stepSeq++;
      const turns = new Map<SpanState, () => void>();
      for (const span of s.chain) span.turn = new Promise<void>((r) => turns.set(span, r));
      this.#turns = turns;
      let flow: Flow = { last: hidden };
      let pushing = true;
      /** The spans of a push that got no answer in time: their rerun finds a hung server sooner. */
      const rerun = new Set<SpanState>();
      for (let i = 0; i < s.chain.length;) {
        const n = pushing ? this.#links.pushRun(i, flow.last) : 0;
        if (n > 0) {
          const pushed = await pushStep(s, i, n, flow.last, p, stepId, { signal: options.signal });
          if (pushed === "timed out") { for (const span of s.chain.slice(i, i + n + 1)) rerun.add(span); }
          else if (pushed) {
            flow = { last: pushed.last };
            for (let k = i; k < i + pushed.spans; k++) turns.get(s.chain[k])?.();
            i += pushed.spans;
            continue;
          }
          // the push failed somewhere: this step goes on span by span from i (failures there
          // ban and replace servers as usual; spans that already ran it roll back and rerun it)
          pushing = false;
        }
        flow = await withRetries(
          s,
          this.#router,
          i,
          (span) =>
            relayStep(s, this.#router, span, flow, p, stepId, {
              signal: options.signal,
              rerun: rerun.has(span),
            }),
          { signal: options.signal, startsOver },
        );
        turns.get(s.chain[i])?.();
        i++;
      }
      s.position = p + t;
      s.stats.steps++;
      return flow.last;
    } catch (err) {
      if (options.signal?.aborted) this.#dropClosedRemotes();
      throw err;
    } finally {
      for (const done of this.#turns.values()) done();
      this.#turns = new Map();
      this.#busy = false;
    }
  }

  /** Closes every remote session. Idempotent; never throws. */
  async close(): Promise<void> {
    const s = this.#s;
    if (s.closed) return;
    s.closed = true;
    s.options.onClose?.();
    await Promise.all(s.chain.map((span) => span.remote?.close().catch(() => {})));
    for (const span of s.chain) span.remote = undefined;
  }

  /** Refuses a step input that does not fit the session (shape, position, length, lost history). */
  #checkStep(hidden: Hidden, p: number): void {
    const s = this.#s;
    const [b, t, h] = hidden.shape;
    if (b !== this.batch || t < 1 || (this.#hiddenSize !== undefined && h !== this.#hiddenSize)) {
      throw new SwarmError(
        "BAD_INPUT",
        `step input shape [${hidden.shape.join(", ")}] does not fit the session (batch ${this.batch}, ` +
          `hidden ${this.#hiddenSize ?? "any"}, ≥ 1 token)`,
        { hint: "send [batch, newTokens, hiddenSize] hidden states from the client head" },
      );
    }
    if (!(Number.isInteger(p) && 0 <= p && p <= s.position)) {
      throw new SwarmError("BAD_INPUT", `startFromPosition ${p} is outside [0, ${s.position}]`, {
        hint: "a session can only roll back to a position it has already reached",
      });
    }
    if (p + t > this.maxLength) {
      throw new SwarmError(
        "TOO_LONG",
        `step would reach ${p + t} tokens, past the session's maxLength ${this.maxLength}`,
        {
          hint: "open the session with a larger maxLength (prompt + max new tokens)",
          details: { position: p, tokens: t, maxLength: this.maxLength },
        },
      );
    }
    if (s.chain.some((span) => span.history === null)) {
      throw new SwarmError(
        "SESSION_BROKEN",
        `session ${this.id} lost its input history in an earlier failed step`,
        { hint: "open a new session (its prefix is recomputed)" },
      );
    }
  }

  /**
   * After the caller gave up on a step: sessions whose connection the abort ended are let go
   * without blaming their servers; the next step opens new ones on the same servers and replays.
   */
  #dropClosedRemotes(): void {
    for (const span of this.#s.chain) {
      if (span.remote?.closed) span.remote = undefined;
    }
  }
}
