/**
 * `SwarmServer`: the server side of the swarm, composed. A `SwarmPeer` (libp2p, table,
 * dissemination) plus this server's signed record (joining → online → offline, re-announced
 * every period with a fresh `seq` and TTL), block selection against the table, and the
 * info/inference/forward protocol handlers over a `BlockRuntime`, feeding `Metrics`.
 *
 * Order of use: `start()` (libp2p up, tables pulled) → `chooseSpan()` → `announce("joining")`
 * → load the runtime → `serve(runtime, figures)` (handlers + online) → … → `stop()` (announces
 * offline at once, closes sessions, stops libp2p). `stop()` is idempotent.
 * @module
 */
import type { BlockRuntime } from "../runtime/types.ts";
import { SwarmError } from "../errors.ts";
import { type AbortOptions, sleep, timeoutSignal } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import type { ServerState, SwarmRecord } from "../wire/mod.ts";
import { chooseBestBlocks, type RebalanceDecision, shouldChooseOtherBlocks } from "./block_selection.ts";
import { serveForwardStream } from "./forward_handler.ts";
import { ForwardGate, type ForwardLimits } from "./forward_gate.ts";
import { serveInferenceStream } from "./inference_handler.ts";
import { serveInfoStream } from "./info_handler.ts";
import { FORWARD_PROTOCOL, INFERENCE_PROTOCOL, INFO_PROTOCOL } from "./protocol_ids.ts";
import { signRecord } from "./record_signer.ts";
import { DEFAULT_SESSION_LIMITS, type SessionLimits, SessionManager } from "./session_manager.ts";
import { SESSION_STREAMS, SwarmPeer } from "./swarm_peer.ts";
import { withDefaults } from "../util/with_defaults.ts";
import type {
  MoveListener,
  RebalanceOutcome,
  Span,
  SwarmServerOptions,
  ThroughputFigures,
} from "./swarm_server_options.ts";

export type {
  MoveListener,
  RebalanceOptions,
  RebalanceOutcome,
  Span,
  SwarmServerOptions,
  ThroughputFigures,
} from "./swarm_server_options.ts";

/** Most servers a server pings as possible next hops (the record holds at most 64 `nextPings`). */
const MAX_NEXT_PINGS = 16;

export class SwarmServer {
  readonly peer: SwarmPeer;
  readonly #o: SwarmServerOptions;
  readonly #logger: Logger;
  readonly #now: () => number;
  #runtime: BlockRuntime | undefined;
  #sessions: SessionManager | undefined;
  #figures: ThroughputFigures = { throughput: 0, inferenceRps: 0, forwardRps: 0, networkRps: 0 };
  #span: Span | undefined;
  #state: ServerState = "joining";
  #seq = 0;
  /** RTT averages (ms) to the servers a route can go on to after this one (announced as `nextPings`). */
  readonly #nextPings = new Map<string, number>();
  #pinging: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #serving = false;
  #stopped = false;
  #started = false;
  #startedAt = 0;
  #sessionsRuntime: BlockRuntime | undefined;
  #handlersInstalled = false;
  #moveListener: MoveListener | undefined;
  #moving = false;
  #movingTo: Span | undefined;
  #rebalanceTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #stopController = new AbortController();
  /** One gate for every forward this server serves, whatever runtime serves it. */
  readonly forwards: ForwardGate;
  #announced = false;
  #reannounce: ReturnType<typeof setTimeout> | undefined;

  constructor(options: SwarmServerOptions) {
    this.#o = options;
    this.forwards = new ForwardGate(options.forwardLimits);
    this.#logger = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
    this.#runtime = options.runtime;
    this.#moveListener = options.onMove;
    this.peer = new SwarmPeer({
      ...options,
      logger: this.#logger,
      streamInactivityMs: options.streamInactivityMs ??
        (options.sessionLimits?.idleMs ?? 300_000) + 60_000,
    });
  }

  get peerId(): string {
    return this.peer.peerId;
  }
  get table() {
    return this.peer.table;
  }
  get state(): ServerState {
    return this.#state;
  }
  get span(): Span | undefined {
    return this.#span;
  }
  get sessions(): number {
    return this.#sessions?.count ?? 0;
  }
  /** The limits its forward requests run under. */
  get forwardLimits(): Readonly<ForwardLimits> {
    return this.forwards.limits;
  }
  /** The limits its inference sessions run under: the session manager's once serving, else the configured ones. */
  get sessionLimits(): SessionLimits {
    return this.#sessions?.limits ?? withDefaults(DEFAULT_SESSION_LIMITS, this.#o.sessionLimits);
  }

  /** Starts libp2p and pulls the table from the initial peers; serves `info`. */
  async start({ signal }: AbortOptions = {}): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#startedAt = this.#now();
    await this.peer.start({ signal });
    await this.peer.handle(INFO_PROTOCOL, (ch) =>
      serveInfoStream(ch, {
        own: () => this.table.get(this.peerId)?.signed,
        live: () => {
          const snap = this.#o.metrics.snapshot();
          return {
            sessions: this.sessions,
            cacheTokensLeft: this.#runtime && this.#serving ? this.#runtime.info().cacheTokensLeft : 0,
            uptimeSeconds: snap.uptimeSeconds,
            tokensProcessed: snap.tokensProcessed,
            requestCount: snap.requestCount,
          };
        },
      }));
    // a relay slot gained or lost, reachability decided: the record must say so at once
    this.peer.onAddressesChanged(() => this.#announceSoon());
    this.peer.nat.monitor?.onChange(() => this.#announceSoon());
  }

  #announceSoon(): void {
    if (this.#stopped || !this.#announced || this.#reannounce) return;
    this.#reannounce = setTimeout(() => {
      this.#reannounce = undefined;
      if (this.#stopped || !this.#span) return;
      this.announce(this.#state).catch((err) => this.#logger.warn("re-announce failed", { err }));
    }, 100);
  }

  /** Least-covered window of `numBlocks` of a `totalBlocks` model (joining servers count). */
  chooseSpan(totalBlocks: number, numBlocks: number): Span {
    const spans = this.table.servers(this.#o.model).filter((r) => r.peerId !== this.peerId);
    return chooseBestBlocks(spans, totalBlocks, numBlocks);
  }

  /** Whether this server should move now (pure decision over the current table). */
  rebalanceDecision(totalBlocks: number, random?: () => number, balanceQuality?: number): RebalanceDecision {
    const servers = this.table.servers(this.#o.model);
    // One move at a time: while another server has announced an intent, the table is about to
    // change under it, and deciding on either picture (before or after its move) can make two
    // servers trade places for nothing. Decide at a later check, once it has moved or stayed.
    const moving = servers.find((r) => r.peerId !== this.peerId && r.movingTo);
    if (moving) {
      return {
        move: false,
        initialMin: 0,
        reason: `server ${moving.peerId.slice(-8)} is moving to ${moving.movingTo!.start}:${
          moving.movingTo!.end
        }`,
      };
    }
    const spans = servers.map((r) =>
      r.peerId === this.peerId && this.#span ? { ...r, start: this.#span.start, end: this.#span.end } : r
    );
    return shouldChooseOtherBlocks(spans, this.peerId, totalBlocks, { random, balanceQuality });
  }

  /**
   * Pings the servers a route can go on to after this one (online, of this model, covering block
   * `end`; at most MAX_NEXT_PINGS) and keeps an average per server, announced as `nextPings`:
   * what routing (and the client's push policy) counts for the hop between two servers. A server
   * that does not answer within 5 s is dropped from the list until it answers again.
   */
  async measureNextPings({ signal }: AbortOptions = {}): Promise<void> {
    const span = this.#span;
    if (!span) return;
    const next = this.table.servers(this.#o.model).filter((r) =>
      r.peerId !== this.peerId && r.state === "online" && r.start <= span.end && span.end < r.end
    ).slice(0, MAX_NEXT_PINGS);
    for (const peer of [...this.#nextPings.keys()]) {
      if (!next.some((r) => r.peerId === peer)) this.#nextPings.delete(peer);
    }
    await Promise.all(next.map(async (r) => {
      const t = timeoutSignal(5_000, signal);
      try {
        const ms = await this.peer.ping(r, { signal: t.signal });
        const old = this.#nextPings.get(r.peerId);
        const avg = old === undefined ? ms : 0.5 * ms + 0.5 * old;
        this.#nextPings.set(r.peerId, Math.round(avg * 100) / 100);
      } catch {
        this.#nextPings.delete(r.peerId);
      } finally {
        t.clear();
      }
    }));
  }

  /** Publishes this server's record with `state` (and the span, when given). */
  async announce(state: ServerState, span?: Span): Promise<void> {
    if (span) this.#span = span;
    if (!this.#span) {
      throw new SwarmError("NO_SPAN", "cannot announce before a span is chosen", {
        hint: "call chooseSpan first",
      });
    }
    this.#state = state;
    this.#announced = true;
    const signed = await signRecord(this.#record(), this.#o.privateKey);
    await this.peer.publish(signed);
    this.#logger.debug("announced", { state, start: this.#span.start, end: this.#span.end, seq: this.#seq });
  }

  #record(): SwarmRecord {
    const now = this.#now();
    this.#seq = Math.max(this.#seq + 1, now);
    const info = this.#runtime && this.#serving ? this.#runtime.info() : undefined;
    const totalBlocks = info?.numBlocks ?? this.#o.totalBlocks;
    const addrs = announcedAddrs(this.peer.multiaddrs());
    const nat = this.peer.natStatus();
    return {
      peerId: this.peerId,
      addrs,
      model: this.#o.model,
      start: this.#span!.start,
      end: this.#span!.end,
      state: this.#state,
      ...this.#figures,
      cacheTokensLeft: info?.cacheTokensLeft ?? 0,
      weights: this.#o.weights,
      version: this.#o.version,
      wallet: this.#o.wallet ?? null,
      ...(this.#movingTo ? { movingTo: this.#movingTo } : {}),
      usingRelay: addrs.some((a) => a.includes("/p2p-circuit")),
      ...(nat ? { reachability: nat.reachability.status } : {}),
      ...(nat?.relaying ? { relay: true } : {}),
      nextPings: Object.fromEntries(this.#nextPings),
      seq: this.#seq,
      expiresAt: now + (this.#o.ttlMs ?? 3 * (this.#o.announcePeriodMs ?? 30_000)),
      ...(totalBlocks !== undefined && totalBlocks >= this.#span!.end ? { totalBlocks } : {}),
      ...(this.#startedAt ? { startedAt: this.#startedAt } : {}),
    };
  }

  /**
   * Serves inference/forward over `runtime` (already started) and announces `online`. Called
   * again with another runtime (after a move), it switches to it: new sessions go to the new
   * runtime, sessions of the previous one are ended (their clients fail over).
   */
  async serve(runtime?: BlockRuntime, figures?: ThroughputFigures): Promise<void> {
    if (runtime) this.#runtime = runtime;
    const rt = this.#runtime;
    if (!rt) {
      throw new SwarmError("NO_RUNTIME", "serve() needs a started BlockRuntime", {
        hint: "pass the runtime",
      });
    }
    if (figures) this.#figures = figures;
    const info = rt.info();
    this.#span = { start: info.start, end: info.end };
    let previous: SessionManager | undefined;
    if (this.#sessionsRuntime !== rt) {
      previous = this.#sessions;
      this.#sessions = new SessionManager({
        runtime: rt,
        limits: this.#o.sessionLimits,
        logger: this.#logger,
      });
      this.#sessions.start();
      this.#sessionsRuntime = rt;
    }
    if (!this.#handlersInstalled) {
      this.#handlersInstalled = true;
      // deps are read per stream, so a switched runtime serves every stream opened after it
      // one client may hold most sessions of this server (session_manager.ts) on one connection
      const streams = { maxInboundStreams: Math.max(SESSION_STREAMS, this.sessionLimits.maxSessions + 64) };
      await this.peer.handle(
        INFERENCE_PROTOCOL,
        (ch, conn) => serveInferenceStream(ch, { ...this.#deps(), client: conn.remotePeer.toString() }),
        streams,
      );
      await this.peer.handle(FORWARD_PROTOCOL, (ch) => serveForwardStream(ch, this.#deps()), streams);
    }
    this.#serving = true;
    await this.announce("online");
    await previous?.stop();
    if (!this.#timer) {
      this.#timer = setInterval(() => {
        if (this.#stopped) return;
        this.announce(this.#state).catch((err) => this.#logger.warn("re-announce failed", { err }));
        // measured for the next announcement, never delaying one (a hung peer takes 5 s to give up on)
        this.#pinging ??= this.measureNextPings({ signal: this.#stopController.signal })
          .catch((err) => this.#logger.debug("next pings failed", { err }))
          .finally(() => (this.#pinging = undefined));
      }, this.#o.announcePeriodMs ?? 30_000);
    }
    this.#scheduleRebalance();
  }

  #deps() {
    return {
      runtime: this.#runtime!,
      model: this.#o.model,
      metrics: this.#o.metrics,
      logger: this.#logger,
      sessions: this.#sessions!,
      forwards: this.forwards,
      ...(this.peer.holePunch
        ? {
          punch: {
            publicHost: (options?: AbortOptions) => this.peer.nat.observedHost(options),
            limits: this.peer.limits,
            scope: this.#o.nat?.scope,
          },
        }
        : {}),
    };
  }

  /**
   * Sets the move listener (rebalancing runs only with one); returns a function that removes it.
   * The listener gets the new span and must serve it (see `MoveListener`).
   */
  onMove(listener: MoveListener): () => void {
    this.#moveListener = listener;
    this.#scheduleRebalance();
    return () => {
      if (this.#moveListener === listener) this.#moveListener = undefined;
    };
  }

  /** Whether a move is in progress. */
  get moving(): boolean {
    return this.#moving;
  }

  #scheduleRebalance(): void {
    if (this.#rebalanceTimer || this.#stopped || !this.#serving || this.#o.pinned || !this.#moveListener) {
      return;
    }
    const delay = Math.max(0, this.#o.rebalance?.delayMs?.() ?? Math.random() * 120_000);
    this.#rebalanceTimer = setTimeout(async () => {
      try {
        await this.rebalanceOnce();
      } catch (err) {
        this.#logger.warn("rebalancing check failed", { err });
      }
      this.#rebalanceTimer = undefined;
      this.#scheduleRebalance();
    }, delay);
  }

  /**
   * One rebalancing check: decides over the current table (pure functions) and, when a move
   * pays off, announces the intent (`movingTo`, still online on the old span), waits
   * `settleMs`, re-checks that every old block stays served by an online server that does not
   * intend to move, then announces the new span as joining and calls the move listener.
   * Logged either way.
   */
  async rebalanceOnce(): Promise<RebalanceOutcome> {
    const no = (reason: string): RebalanceOutcome => ({ move: false, moved: false, initialMin: 0, reason });
    if (this.#stopped || !this.#serving || !this.#runtime || !this.#span) return no("not serving");
    if (this.#o.pinned) return no("span pinned by --block-indices");
    if (this.#moving) return no("a move is in progress");
    const listener = this.#moveListener;
    if (!listener) return no("no move listener");
    const total = this.#runtime.info().numBlocks;
    const decision = this.rebalanceDecision(
      total,
      this.#o.rebalance?.random,
      this.#o.rebalance?.balanceQuality,
    );
    if (!decision.move || decision.start === undefined || decision.end === undefined) {
      this.#logger.debug("rebalancing: staying", { span: spanText(this.#span), reason: decision.reason });
      return { ...decision, moved: false };
    }
    const from = this.#span;
    const to = { start: decision.start, end: decision.end };
    this.#moving = true;
    try {
      this.#logger.info("rebalancing: moving to less covered blocks", {
        from: spanText(from),
        to: spanText(to),
        reason: decision.reason,
      });
      this.#movingTo = to;
      await this.announce("online", from);
      await sleep(this.#o.rebalance?.settleMs ?? 2000, { signal: this.#stopController.signal });
      const uncovered = this.#uncoveredWithoutMe(from);
      this.#movingTo = undefined;
      if (uncovered.length) {
        this.#logger.info("rebalancing: another server means to leave the same blocks; staying", {
          span: spanText(from),
          uncovered,
        });
        await this.announce("online", from);
        return { ...decision, move: false, moved: false, reason: `blocks ${uncovered} would be uncovered` };
      }
      // decide again on the settled table: a decision taken on a table that was still filling
      // (a record not yet arrived, another server's intent crossing ours) is dropped here
      const again = this.rebalanceDecision(
        total,
        this.#o.rebalance?.random,
        this.#o.rebalance?.balanceQuality,
      );
      if (!(again.move && again.start === to.start && again.end === to.end)) {
        this.#logger.info("rebalancing: the table changed while settling; staying", {
          span: spanText(from),
          reason: again.reason,
        });
        await this.announce("online", from);
        return { ...decision, move: false, moved: false, reason: `no longer pays off: ${again.reason}` };
      }
      await this.announce("joining", to);
      await listener(to, { signal: this.#stopController.signal });
      const info = this.#runtime.info();
      if (info.start !== to.start || info.end !== to.end) {
        throw new SwarmError(
          "MOVE_NOT_SERVED",
          `the move listener did not serve blocks ${
            spanText(to)
          } (the runtime serves ${info.start}:${info.end})`,
          { hint: "the listener must load the new span and call server.serve(newRuntime)" },
        );
      }
      this.#logger.info("rebalancing: moved", { from: spanText(from), to: spanText(to) });
      return { ...decision, moved: true };
    } catch (err) {
      this.#movingTo = undefined;
      if (this.#stopped) return { ...decision, moved: false, reason: "stopped during the move" };
      this.#logger.error("rebalancing: move failed; serving the old blocks again", { to: spanText(to), err });
      const info = this.#runtime.info();
      await this.announce("online", { start: info.start, end: info.end });
      return { ...decision, moved: false, reason: `move failed: ${(err as Error).message}` };
    } finally {
      this.#moving = false;
    }
  }

  /** Blocks of `span` that no other online server of the model (not about to move) serves. */
  #uncoveredWithoutMe(span: Span): number[] {
    const others = this.table.servers(this.#o.model).filter((r) =>
      r.peerId !== this.peerId && r.state === "online" && !r.movingTo
    );
    const out: number[] = [];
    for (let b = span.start; b < span.end; b++) {
      if (!others.some((r) => r.start <= b && b < r.end)) out.push(b);
    }
    return out;
  }

  /** Announces offline (so clients route away at once), closes sessions, stops libp2p. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopController.abort(new SwarmError("STOPPED", "the swarm server is stopping"));
    if (this.#timer) clearInterval(this.#timer);
    if (this.#rebalanceTimer) clearTimeout(this.#rebalanceTimer);
    if (this.#reannounce) clearTimeout(this.#reannounce);
    await this.#pinging;
    if (this.#started && this.#span) {
      try {
        await this.announce("offline");
      } catch (err) {
        this.#logger.warn("offline announcement failed", { err });
      }
    }
    await this.#sessions?.stop();
    if (this.#started) await this.peer.stop();
  }
}

/**
 * The addresses a record announces (at most 32): relayed ones through a relay reached at a
 * loopback address are dropped (nobody else can use them), relayed ones come after the others.
 */
export function announcedAddrs(addrs: readonly string[]): string[] {
  const relayed = addrs.filter((a) => a.includes("/p2p-circuit") && !/^\/ip[46]\/(127\.|::1\/)/.test(a));
  const relays = relayed.slice(0, 8);
  return [...addrs.filter((a) => !a.includes("/p2p-circuit")).slice(0, 32 - relays.length), ...relays];
}

function spanText(s: Span): string {
  return `${s.start}:${s.end}`;
}
