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
 * @module
 */
import { errorMessage, PlumiseError, SwarmError } from "../../errors.ts";
import { type AbortOptions, sleep, withTimeout } from "../../util/abort.ts";
import { Backoff, type BackoffOptions } from "../../util/backoff.ts";
import { type Logger, silentLogger } from "../../util/logger.ts";
import { BanList } from "./ban_list.ts";
import { concatTokens, sliceTokens, tokenCount } from "./hidden_ops.ts";
import { PingAggregator } from "./ping_aggregator.ts";
import { describeRoute, type RouteCosts, routeInference, shortPeer } from "./route_inference.ts";
import type {
  Hidden,
  PushReply,
  PushTicket,
  RemoteSpanSession,
  RouteServer,
  RouteSpan,
  ServerWeights,
  SpanTransport,
  SwarmTableView,
} from "./types.ts";

export interface SwarmInferenceSessionOptions {
  readonly model: string;
  /** Blocks to run, `[start, end)` (usually `[0, numBlocks)`). */
  readonly start: number;
  readonly end: number;
  /** Most tokens the session will ever hold. */
  readonly maxLength: number;
  readonly batch?: number;
  readonly table: SwarmTableView;
  readonly transport: SpanTransport;
  /** Shared across sessions of one client so that bans and pings carry over. */
  readonly bans?: BanList;
  readonly pings?: PingAggregator;
  readonly weights?: ServerWeights;
  readonly version?: string;
  readonly costs?: Partial<RouteCosts>;
  /** Failures tolerated within one step before giving up (default 5). */
  readonly maxRetries?: number;
  /** Delay between retries after the first, immediate one (default 100 ms doubling to 2 s). */
  readonly retryBackoff?: BackoffOptions;
  /** Timeout of one remote step, replay included (default 60 s). */
  readonly stepTimeoutMs?: number;
  /** Timeout of opening one remote session (default 10 s). */
  readonly openTimeoutMs?: number;
  readonly sessionId?: string;
  /**
   * Push outputs server to server (`SpanLinks`, where the transport offers them) instead of
   * relaying every hop through the client: true, false, or "auto" (the default: see `pushPays`).
   */
  readonly push?: boolean | "auto";
  readonly logger?: Logger;
  /** Called once by `close()`. */
  readonly onClose?: () => void;
}

export interface SessionStepOptions {
  /** Roll the whole chain back to this position first (default: the current position). */
  readonly startFromPosition?: number;
  readonly signal?: AbortSignal;
}

/** Counters for logs and tests. */
export interface SessionStats {
  steps: number;
  failures: number;
  /** Replacement spans routed after a failure. */
  replacements: number;
  /** Token positions re-sent to replacements. */
  replayedTokens: number;
  /** Span steps whose input the previous span's server pushed (the client only collected the result). */
  pushed: number;
}

interface SpanState {
  readonly start: number;
  readonly end: number;
  server?: RouteServer;
  remote?: RemoteSpanSession;
  /** The last attempt to link `remote` to the next span's remote (push its outputs there). */
  link?: SpanLink;
  /** Set while the first step's open-ahead of `remote` is in flight (settles, never rejects). */
  opening?: Promise<void>;
  /**
   * Settles once the last use of `remote` queued so far is over (never rejects): a step and the
   * background linking never talk to one remote session at the same time (`#acquire`).
   */
  idle?: Promise<void>;
  /** Set while a background attempt to link this span to the next one is in flight (settles, never rejects). */
  linking?: Promise<void>;
  /**
   * Settles once the step in progress is done with this span (set by each step for every span;
   * the linking's `link_to` waits for it, so that it never holds up the step).
   */
  turn?: Promise<void>;
  /** Inputs this range has received so far (total = session position); null = to be taken from upstream. */
  history: Hidden[] | null;
}

interface SpanLink {
  readonly from: RemoteSpanSession;
  readonly to: RemoteSpanSession;
  /** The input link's ticket from `to` (its loss makes the link untrusted). */
  readonly ticket: PushTicket;
  readonly ok: boolean;
}

/** Largest frame a push may build up (every output of the push travels in the last one): 16 MiB. */
export const MAX_PUSH_BYTES = 16 * 1024 * 1024;
/** "auto" pushes over a link when the client is at least this much farther (RTT, ms) from its target than its source is. */
export const PUSH_MIN_GAIN_MS = 1;

/**
 * Whether pushing from one server to the next saves time (the "auto" policy). A push replaces the
 * client's round trip to the next server by the hop between the two servers: one leg and one
 * wake-up of the client fewer per hop. It pays most where the client is far from the servers.
 * Where both servers run on the client's own machine there is no network to save, only the legs:
 * it broke even while the runtime's threads were unpinned (a push makes the next server start
 * while the previous one still finishes on the same cores) and gains a little since they are
 * pinned (docs/benchmarks.md, "Server-to-server push"). So: push between two servers on the client's machine;
 * with both RTTs known (the client's pings, the previous server's announced `nextPings`), push when
 * the client's is PUSH_MIN_GAIN_MS longer; otherwise push.
 */
export function pushPays(
  link: { bothLocal: boolean; clientRttMs?: number; serverRttMs?: number },
): boolean {
  if (link.bothLocal) return true;
  const { clientRttMs: c, serverRttMs: s } = link;
  if (c !== undefined && s !== undefined && Number.isFinite(c) && Number.isFinite(s)) {
    return c - s >= PUSH_MIN_GAIN_MS;
  }
  return true;
}

interface Flow {
  /** The step's new positions. */
  last: Hidden;
  /** Every position from 0, when the upstream span has just been replayed. */
  full?: Hidden;
}

let counter = 0;

export class SwarmInferenceSession {
  readonly id: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly maxLength: number;
  readonly batch: number;
  readonly stats: SessionStats = { steps: 0, failures: 0, replacements: 0, replayedTokens: 0, pushed: 0 };
  readonly #o: SwarmInferenceSessionOptions;
  readonly #bans: BanList;
  readonly #pings: PingAggregator;
  readonly #log: Logger;
  #chain: SpanState[] = [];
  #position = 0;
  #hiddenSize: number | undefined;
  #remoteSeq = 0;
  /** Step ids on the wire: one per `step` call, the same on every span (pushes carry it). */
  #stepSeq = 0;
  #busy = false;
  /** Ends each span's turn in the step in progress (see `SpanState.turn`). */
  #turns = new Map<SpanState, () => void>();
  #routed = false;
  #closed = false;

  constructor(options: SwarmInferenceSessionOptions) {
    const { start, end, maxLength } = options;
    const batch = options.batch ?? 1;
    if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end)) {
      throw new SwarmError("BAD_SESSION", `session blocks [${start}, ${end}) are not a range`, {
        hint: "start and end must be integers with 0 ≤ start < end (usually 0 and the model's block count)",
      });
    }
    if (!(Number.isInteger(maxLength) && maxLength >= 1) || !(Number.isInteger(batch) && batch >= 1)) {
      throw new SwarmError("BAD_SESSION", `maxLength ${maxLength} and batch ${batch} must be integers ≥ 1`, {
        hint: "maxLength = prompt tokens + max new tokens",
      });
    }
    this.#o = options;
    this.id = options.sessionId ??
      `${Date.now().toString(36)}-${(++counter).toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
    this.model = options.model;
    this.start = start;
    this.end = end;
    this.maxLength = maxLength;
    this.batch = batch;
    this.#bans = options.bans ?? new BanList();
    this.#pings = options.pings ?? new PingAggregator();
    this.#log = (options.logger ?? silentLogger).child({ session: this.id });
    this.#chain = [{ start, end, history: [] }];
  }

  /** Tokens in the servers' caches. */
  get position(): number {
    return this.#position;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The current chain of spans (servers known once routed). */
  get route(): RouteSpan[] {
    return this.#chain.filter((s) => s.server).map((s) => ({
      server: s.server!,
      start: s.start,
      end: s.end,
    }));
  }

  /**
   * Neighbouring spans linked so far (their steps are pushed server to server): the links are made
   * in the background once both sessions are open, so this grows during the first steps.
   */
  get linkedHops(): number {
    let n = 0;
    for (let k = 0; k + 1 < this.#chain.length; k++) if (this.#trusted(k)) n++;
    return n;
  }

  /** Routes and opens every span now (otherwise done by the first step). */
  async open({ signal }: AbortOptions = {}): Promise<void> {
    this.#assertOpen();
    for (let i = 0; i < this.#chain.length; i++) {
      await this.#withRetries(i, async (span) => {
        // nothing sent yet: a span routed here has an empty history, not one to take from upstream
        if (this.#position === 0) span.history ??= [];
        if (!span.remote) await this.#openRemote(span, { signal });
      }, { signal });
    }
    // the caller prepares ahead: the links too, so that the first step already pushes
    this.#linkAhead();
    await Promise.all(this.#chain.map((s) => s.linking));
  }

  /**
   * Runs `hidden [B, T, H]` through every block after the cached past and returns `[B, T, H]`.
   * Failures of servers are handled inside; throws only when retries are exhausted, when the
   * caller aborts, or on bad input.
   */
  async step(hidden: Hidden, options: SessionStepOptions = {}): Promise<Hidden> {
    this.#assertOpen();
    if (this.#busy) {
      throw new SwarmError("STEP_IN_PROGRESS", `session ${this.id} is already running a step`, {
        hint: "await each step before sending the next",
      });
    }
    const [b, t, h] = hidden.shape;
    const p = options.startFromPosition ?? this.#position;
    if (b !== this.batch || t < 1 || (this.#hiddenSize !== undefined && h !== this.#hiddenSize)) {
      throw new SwarmError(
        "BAD_INPUT",
        `step input shape [${hidden.shape.join(", ")}] does not fit the session (batch ${this.batch}, ` +
          `hidden ${this.#hiddenSize ?? "any"}, ≥ 1 token)`,
        { hint: "send [batch, newTokens, hiddenSize] hidden states from the client head" },
      );
    }
    if (!(Number.isInteger(p) && 0 <= p && p <= this.#position)) {
      throw new SwarmError("BAD_INPUT", `startFromPosition ${p} is outside [0, ${this.#position}]`, {
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
    if (this.#chain.some((span) => span.history === null)) {
      throw new SwarmError(
        "SESSION_BROKEN",
        `session ${this.id} lost its input history in an earlier failed step`,
        {
          hint: "open a new session (its prefix is recomputed)",
        },
      );
    }
    this.#busy = true;
    try {
      this.#hiddenSize = h;
      // spans that ran a step that later failed downstream hold extra inputs: forget them
      for (const span of this.#chain) span.history = truncate(span.history!, p);
      this.#position = p;
      if (!this.#routed) this.#openAhead({ signal: options.signal });
      else this.#linkAhead();
      const stepId = this.#stepSeq++;
      const turns = new Map<SpanState, () => void>();
      for (const span of this.#chain) span.turn = new Promise<void>((r) => turns.set(span, r));
      this.#turns = turns;
      let flow: Flow = { last: hidden };
      let pushing = true;
      for (let i = 0; i < this.#chain.length;) {
        const n = pushing ? this.#pushRun(i, flow.last) : 0;
        if (n > 0) {
          const pushed = await this.#push(i, n, flow.last, p, stepId, { signal: options.signal });
          if (pushed) {
            flow = { last: pushed.last };
            for (let k = i; k < i + pushed.spans; k++) turns.get(this.#chain[k])?.();
            i += pushed.spans;
            continue;
          }
          // the push failed somewhere: this step goes on span by span from i (failures there
          // ban and replace servers as usual; spans that already ran it roll back and rerun it)
          pushing = false;
        }
        flow = await this.#withRetries(
          i,
          (span) => this.#stepSpan(span, flow, p, stepId, { signal: options.signal }),
          { signal: options.signal },
        );
        turns.get(this.#chain[i])?.();
        i++;
      }
      this.#position = p + t;
      this.stats.steps++;
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
    if (this.#closed) return;
    this.#closed = true;
    this.#o.onClose?.();
    await Promise.all(this.#chain.map((s) => s.remote?.close().catch(() => {})));
    for (const s of this.#chain) s.remote = undefined;
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new SwarmError("SESSION_CLOSED", `session ${this.id} is closed`, { hint: "open a new session" });
    }
  }

  /**
   * After the caller gave up on a step: sessions whose connection the abort ended are let go
   * without blaming their servers; the next step opens new ones on the same servers and replays.
   */
  #dropClosedRemotes(): void {
    for (const span of this.#chain) {
      if (span.remote?.closed) span.remote = undefined;
    }
  }

  /** Runs `fn` on chain[i], replacing the span after failures, with bounded retries. */
  async #withRetries<T>(
    i: number,
    fn: (span: SpanState) => Promise<T>,
    { signal }: AbortOptions = {},
  ): Promise<T> {
    const maxRetries = this.#o.maxRetries ?? 5;
    const backoff = new Backoff({ initialMs: 100, maxMs: 2000, ...this.#o.retryBackoff });
    let lastError: unknown;
    const failedPeers: string[] = [];
    const relayRetried = new Map<string, number>();
    for (let attempt = 0;; attempt++) {
      signal?.throwIfAborted();
      const span = this.#chain[i];
      const range = `[${span.start}, ${span.end})`;
      try {
        if (!span.server) this.#reroute(i);
        return await fn(this.#chain[i]);
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        if (this.#closed) throw err;
        if (err instanceof PlumiseError && err.code === "INTERNAL") throw err;
        lastError = err;
        this.stats.failures++;
        const failed = this.#chain[i];
        const peer = failed.server?.peerId;
        const relayTries = peer ? relayRetried.get(peer) ?? 0 : 0;
        if (peer && relayLost(failed, err) && relayTries < RELAY_RETRIES) {
          // the relay went away (restarted, ended the circuit at its limits), not the server: reopen
          // it (through another relay, or this one once the server holds a slot there again) and
          // replay, without banning it — a few times per step, with the usual back-off between
          relayRetried.set(peer, relayTries + 1);
          this.#log.warn("relayed connection lost; reopening the server through its relays", {
            peer,
            blocks: `${failed.start}:${failed.end}`,
            attempt: relayTries + 1,
            error: errorMessage(err),
          });
          const remote = failed.remote;
          failed.remote = undefined;
          remote?.close().catch(() => {});
          if (relayTries > 0) await sleep(backoff.next(), { signal });
          continue;
        }
        if (peer) {
          failedPeers.push(peer);
          const banMs = this.#bans.ban(peer);
          this.#log.warn("server failed; re-routing its blocks", {
            peer,
            blocks: `${failed.start}:${failed.end}`,
            attempt: attempt + 1,
            banMs,
            error: errorMessage(err),
          });
          const remote = failed.remote;
          failed.remote = undefined;
          failed.server = undefined;
          remote?.close().catch(() => {});
        } else {
          this.#log.warn("no route for blocks", {
            blocks: range,
            attempt: attempt + 1,
            error: errorMessage(err),
          });
        }
        if (attempt + 1 > maxRetries) {
          const code = err instanceof PlumiseError ? err.code : "ERROR";
          throw new SwarmError(
            "SESSION_FAILED",
            `inference for blocks ${range} of ${this.model} failed after ${attempt + 1} attempts ` +
              `(servers tried: ${failedPeers.map(shortPeer).join(", ") || "none"}): ${
                errorMessage(lastError)
              }`,
            {
              cause: lastError,
              hint: code === "MISSING_BLOCKS"
                ? "no other server covers these blocks; start one (plumise serve --block-indices …) or retry later"
                : "the servers for these blocks keep failing; retry later or check the swarm with `plumise swarm`",
              details: {
                blocks: [span.start, span.end],
                attempts: attempt + 1,
                lastCode: code,
                peers: failedPeers,
              },
            },
          );
        }
        if (attempt > 0) await sleep(backoff.next(), { signal });
        if (this.#o.table.refresh) {
          await this.#o.table.refresh({ signal }).catch((e) =>
            this.#log.debug("table refresh failed", { error: errorMessage(e) })
          );
        }
      }
    }
  }

  /**
   * The first step routes the whole range and starts opening every span's remote session at once,
   * instead of one per hop as the step reaches it; the step goes on as soon as the first span is
   * open, so the later spans open while the earlier ones compute. (Opening the later ones only once
   * the first is open made its open quicker but slowed its compute far more: docs/benchmarks.md,
   * "Opening a session".) Each span
   * that opens starts linking to its open neighbours (`#linkAhead`). A failure here is left to
   * the step, whose retries open (and, on failure, ban and replace) span by span as usual.
   */
  #openAhead({ signal }: AbortOptions = {}): void {
    try {
      this.#reroute(0);
    } catch {
      return; // e.g. MISSING_BLOCKS: the step reports it with its retries
    }
    // never routed = nothing sent yet: every span's history is empty
    for (const span of this.#chain) span.history ??= [];
    for (const span of this.#chain) {
      if (!span.server || span.remote) continue;
      const server = span.server;
      span.opening = this.#openRemote(span, { signal }).catch((err) => {
        this.#log.debug("opening ahead failed; the step retries", {
          peer: server.peerId,
          error: errorMessage(err),
        });
      }).finally(() => {
        span.opening = undefined;
        if (!this.#closed) this.#linkAhead();
      });
    }
  }

  /** Replaces chain[i] (a span without a server) by a fresh route for exactly its range. */
  #reroute(i: number): void {
    const old = this.#chain[i];
    const spans = this.#bans.routeAround((skip) =>
      routeInference(this.#o.table.servers(this.model), {
        model: this.model,
        start: old.start,
        end: old.end,
        maxLength: this.maxLength,
        batch: this.batch,
        banned: skip,
        clientRttMs: (p) => this.#pings.rtt(p),
        weights: this.#o.weights,
        version: this.#o.version,
        costs: this.#o.costs,
      })
    );
    const fresh: SpanState[] = spans.map((s, k) => ({
      start: s.start,
      end: s.end,
      server: s.server,
      history: k === 0 ? old.history : null,
    }));
    this.#chain.splice(i, 1, ...fresh);
    if (this.#routed) this.stats.replacements += fresh.length;
    this.#routed = true;
    this.#log.info("route", { blocks: `${old.start}:${old.end}`, route: describeRoute(spans) });
  }

  async #openRemote(span: SpanState, { signal }: AbortOptions = {}): Promise<void> {
    const server = span.server!;
    const remote = await withTimeout(
      this.#o.openTimeoutMs ?? 10_000,
      (s) =>
        this.#o.transport.openInference(server, {
          sessionId: `${this.id}.${++this.#remoteSeq}`,
          model: this.model,
          start: span.start,
          end: span.end,
          maxLength: this.maxLength,
          batch: this.batch,
        }, { signal: s }),
      { signal },
    );
    if (this.#closed) {
      // closed while it was opening (an open-ahead outliving its step): do not leak it
      await remote.close().catch(() => {});
      this.#assertOpen();
    }
    span.remote = remote;
  }

  /**
   * Starts linking, in the background, every pair of neighbouring spans whose remotes are open
   * and neither linked nor being linked (or whose link was lost), so that later steps push down
   * the route. Steps never wait for it: until a pair's link is trusted, the step relays there.
   * The first step's linking thus happens while it computes (each exchange waits until the step is
   * done with that remote: `#acquire`) instead of holding up the second step (docs/benchmarks.md,
   * "Background linking"). A
   * failure only leaves the pair unlinked; a failed attempt between the same two sessions is not
   * repeated.
   */
  #linkAhead(): void {
    for (let i = 0; i + 1 < this.#chain.length; i++) {
      if (!this.#linkable(i) || this.#trusted(i)) continue;
      const span = this.#chain[i], next = this.#chain[i + 1];
      const from = span.remote!, to = next.remote!;
      // linked, being linked or failed between these two sessions: nothing to start
      if (span.link && span.link.from === from && span.link.to === to && !this.#lostLink(span.link)) continue;
      const attempt: SpanLink = { from, to, ticket: undefined, ok: false };
      span.link = attempt;
      const ms = this.#o.openTimeoutMs ?? 10_000;
      const linking: Promise<void> = (async () => {
        try {
          const ticket = await this.#exclusive(
            next,
            () => withTimeout(ms, (s) => to.links!.accept({ signal: s })),
          );
          // not before the step in progress is done with this span (it comes first)
          await span.turn;
          await this.#exclusive(
            span,
            () => withTimeout(ms, (s) => from.links!.pushTo(ticket, { signal: s })),
          );
          if (span.link === attempt) span.link = { from, to, ticket, ok: true };
        } catch (err) {
          this.#log.debug("no link between servers; the client relays", {
            from: span.server?.peerId,
            to: next.server?.peerId,
            error: errorMessage(err),
          });
        }
      })().finally(() => {
        if (span.linking === linking) span.linking = undefined;
      });
      span.linking = linking;
    }
  }

  /** Whether `link` was established and its input side was then reported lost. */
  #lostLink(link: SpanLink): boolean {
    return link.ok && link.to.links?.lost(link.ticket) === true;
  }

  /**
   * Waits until every earlier use of `span`'s remote session is over and returns the function that
   * ends this one: one exchange at a time per remote session (its stream reads its replies in order).
   */
  async #acquire(span: SpanState): Promise<() => void> {
    const before = span.idle;
    let release!: () => void;
    span.idle = new Promise<void>((r) => (release = r));
    if (before) await before;
    return release;
  }

  /** Runs `fn` as the only user of `span`'s remote session (see `#acquire`). */
  async #exclusive<T>(span: SpanState, fn: () => Promise<T>): Promise<T> {
    const release = await this.#acquire(span);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * Whether chain[k] can push to chain[k + 1] now: both sessions open and linkable, both input
   * histories kept, and pushing wanted (the `push` option; "auto": `pushPays`).
   */
  #linkable(k: number): boolean {
    const a = this.#chain[k], b = this.#chain[k + 1];
    if (!a.remote?.links || !b.remote?.links || a.opening || b.opening) return false;
    if (a.history === null || b.history === null) return false;
    const push = this.#o.push ?? "auto";
    if (push !== "auto") return push;
    if (!a.server || !b.server) return false;
    return pushPays({
      bothLocal: a.remote.links.local && b.remote.links.local,
      clientRttMs: this.#pings.rtt(b.server.peerId),
      serverRttMs: a.server.nextPings?.[b.server.peerId],
    });
  }

  /**
   * How many spans after chain[i] a step of `x` can be pushed through: consecutive trusted links,
   * while the frame that carries every output of the push stays under MAX_PUSH_BYTES.
   */
  #pushRun(i: number, x: Hidden): number {
    const parts = Math.floor(MAX_PUSH_BYTES / (x.data.length * 4));
    let n = 0;
    for (let k = i; k + 1 < this.#chain.length && n + 2 <= parts; k++) {
      if (!this.#linkable(k) || !this.#trusted(k)) break;
      n++;
    }
    return n;
  }

  /** Whether chain[k]'s link reaches chain[k + 1]'s current session and was not reported lost. */
  #trusted(k: number): boolean {
    const a = this.#chain[k], b = this.#chain[k + 1], l = a.link;
    return !!l?.ok && l.from === a.remote && l.to === b.remote && b.remote.links?.lost(l.ticket) === false;
  }

  /**
   * Sends step `stepId` of `x` to chain[i], pushed through the n spans after it, and waits for the
   * reply from whichever span the push stops at (the last one, or one that could not push on).
   * Returns the last output and how many spans it covered; undefined when anything failed (a
   * server, a link, the time limit), after which the caller runs the step span by span.
   */
  async #push(
    i: number,
    n: number,
    x: Hidden,
    p: number,
    stepId: number,
    { signal }: AbortOptions = {},
  ): Promise<{ last: Hidden; spans: number } | undefined> {
    const spans = this.#chain.slice(i, i + n + 1);
    // every session of the push is this step's alone until it is over (in chain order: the
    // background linking holds one session at a time, so nothing can wait in a circle)
    const releases: (() => void)[] = [];
    try {
      for (const span of spans) releases.push(await this.#acquire(span));
      return await this.#pushHeld(spans, n, x, p, stepId, { signal });
    } finally {
      for (const release of releases) release();
    }
  }

  async #pushHeld(
    spans: SpanState[],
    n: number,
    x: Hidden,
    p: number,
    stepId: number,
    { signal }: AbortOptions = {},
  ): Promise<{ last: Hidden; spans: number } | undefined> {
    // ends every wait of the push without closing a session: a reply came, the push ran out of
    // time (the rerun span by span then finds the slow server with its own timeout), or the
    // caller gave up on the step (the sessions stay usable: late replies are skipped as stale)
    const until = new AbortController();
    const limitMs = (this.#o.stepTimeoutMs ?? 60_000) * (n + 1);
    const timer = setTimeout(() => until.abort(new Error(`no reply within ${limitMs} ms`)), limitMs);
    const onAbort = () => until.abort(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      try {
        await spans[0].remote!.links!.send(x, { stepId, startFromPosition: p, push: n, signal });
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        return undefined;
      }
      const waits = spans.map((span, k) =>
        span.remote!.links!.receive(stepId, {
          pushed: k > 0,
          ticket: k > 0 ? spans[k - 1].link!.ticket : undefined,
          until: until.signal,
        }).then((r) => ({ k, r }), (err: unknown) => ({ k, err }))
      );
      // the first to settle decides (a reply, a failed server, a lost link); the others are ended
      await Promise.race(waits);
      until.abort(new Error("another span replied"));
      const settled = await Promise.all(waits);
      signal?.throwIfAborted();
      let k = -1, reply: PushReply | undefined;
      for (const w of settled) {
        if ("r" in w && typeof w.r === "object" && w.k > k) ({ k, r: reply } = w);
      }
      const failed = settled.find((w) => "err" in w || w.r === "lost");
      if (!reply) {
        this.#log.debug("push failed; the step goes span by span", {
          span: failed && `${spans[failed.k].start}:${spans[failed.k].end}`,
          error: failed && "err" in failed ? errorMessage(failed.err) : "link lost",
        });
        return undefined;
      }
      if (reply.trail.length !== k) return undefined;
      const outs = [...reply.trail, reply.hidden];
      try {
        outs.forEach((y, j) => this.#checkReply(spans[j], y, x));
      } catch (err) {
        this.#log.debug("bad push reply; the step goes span by span", { error: errorMessage(err) });
        return undefined;
      }
      spans[0].history!.push(x);
      for (let j = 1; j <= k; j++) spans[j].history!.push(outs[j - 1]);
      for (let j = 0; j <= k; j++) this.#bans.succeed(spans[j].server!.peerId);
      this.stats.pushed += k;
      return { last: outs[k], spans: k + 1 };
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      until.abort();
    }
  }

  async #stepSpan(
    span: SpanState,
    flow: Flow,
    p: number,
    stepId: number,
    { signal }: AbortOptions = {},
  ): Promise<Flow> {
    const t = flow.last.shape[1];
    if (span.history === null) {
      if (!flow.full) {
        throw new SwarmError(
          "INTERNAL",
          `span [${span.start}, ${span.end}) has no history and no full input`,
        );
      }
      span.history = p > 0 ? [sliceTokens(flow.full, 0, p)] : [];
    }
    if (span.opening) await span.opening;
    this.#assertOpen();
    const replay = !span.remote;
    if (replay) await this.#openRemote(span, { signal });
    const input = replay && p > 0 ? concatTokens([...span.history, flow.last]) : flow.last;
    const y = await this.#exclusive(span, () =>
      withTimeout(
        this.#o.stepTimeoutMs ?? 60_000,
        (s) => span.remote!.step(input, { stepId, startFromPosition: replay ? 0 : p, signal: s }),
        { signal },
      ));
    this.#checkReply(span, y, input);
    span.history.push(flow.last);
    this.#bans.succeed(span.server!.peerId);
    if (!replay) return { last: y };
    this.stats.replayedTokens += p;
    return { last: p > 0 ? sliceTokens(y, p, p + t) : y, full: y };
  }

  /** A reply must be `[batch, tokens sent, hidden]` float32; anything else is the server's failure. */
  #checkReply(span: SpanState, y: Hidden, input: Hidden): void {
    const sent = input.shape[1];
    if (
      !y || !(y.data instanceof Float32Array) || y.shape[0] !== this.batch || y.shape[1] !== sent ||
      y.shape[2] !== input.shape[2] || y.data.length !== y.shape[0] * y.shape[1] * y.shape[2]
    ) {
      throw new SwarmError(
        "BAD_REPLY",
        `server ${span.server!.peerId} answered shape [${y?.shape?.join(", ")}] for input [${
          input.shape.join(", ")
        }]`,
        { hint: "the server is broken or incompatible; it is banned and replaced" },
      );
    }
  }
}

function truncate(history: Hidden[], p: number): Hidden[] {
  const out: Hidden[] = [];
  let n = 0;
  for (const h of history) {
    if (n >= p) break;
    const t = h.shape[1];
    out.push(n + t <= p ? h : sliceTokens(h, 0, p - n));
    n += Math.min(t, p - n);
  }
  if (tokenCount(out) !== p) throw new SwarmError("INTERNAL", `history has fewer than ${p} tokens`);
  return out;
}

/** Reopens of a relayed server per step before a relay failure counts against the server. */
const RELAY_RETRIES = 3;

/**
 * Whether `err` on `span` looks like its relay failing rather than its server: the session's steps
 * ran through a relay (or its reopening failed on the way to a server that is reached only
 * through relays), and the error is not one the server sent (an error frame says the server itself
 * refused or failed). A punched session no longer depends on its relay.
 */
function relayLost(span: { remote?: RemoteSpanSession; server?: RouteServer }, err: unknown): boolean {
  const relayed = span.remote ? span.remote.path === "relayed" : span.server?.usingRelay === true;
  if (!relayed) return false;
  const details = err instanceof PlumiseError ? err.details as { remote?: boolean } | undefined : undefined;
  return details?.remote !== true;
}
