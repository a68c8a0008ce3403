/**
 * The swarm client: everything a caller needs to generate text through a swarm — routing state
 * shared across sessions (bans, pings), opening multi-server inference sessions, one-shot
 * generation, and chats that reuse their session. It is given the swarm table, a transport to the
 * servers and the model's client head + tokenizer; `connectSwarm` wires the real ones.
 * @module
 */
import { errorMessage, SwarmError } from "../../errors.ts";
import { type AbortOptions, withTimeout } from "../../util/abort.ts";
import type { ClientHead, Tokenizer } from "../../runtime/types.ts";
import { type Logger, silentLogger } from "../../util/logger.ts";
import { BanList, type BanListOptions } from "./ban_list.ts";
import {
  type ConversationState,
  type GenerateOptions,
  Generation,
  newConversation,
  type StepSession,
} from "./generate_text.ts";
import { PingAggregator } from "./ping_aggregator.ts";
import { routeForward } from "./route_forward.ts";
import { type RouteCosts, routeInference, usableServers } from "./route_inference.ts";
import { type LeasedSession, SessionPool, type SessionPoolOptions } from "./session_pool.ts";
import { SwarmInferenceSession, type SwarmInferenceSessionOptions } from "./swarm_inference_session.ts";
import type { Hidden, RouteSpan, ServerWeights, SpanTransport, SwarmTableView } from "./types.ts";
import type { BackoffOptions } from "../../util/backoff.ts";

export interface SwarmClientOptions {
  /** Model id as servers announce it. */
  readonly model: string;
  readonly table: SwarmTableView;
  readonly transport: SpanTransport;
  readonly head: ClientHead;
  readonly tokenizer: Tokenizer;
  /** Blocks of the model (default: the head's `numBlocks`). */
  readonly numBlocks?: number;
  readonly weights?: ServerWeights;
  readonly version?: string;
  readonly costs?: Partial<RouteCosts>;
  readonly maxRetries?: number;
  readonly retryBackoff?: BackoffOptions;
  readonly stepTimeoutMs?: number;
  readonly openTimeoutMs?: number;
  readonly bans?: BanListOptions;
  /** Longest prefill step in tokens (default 512). */
  readonly prefillChunkTokens?: number;
  /**
   * Push a step's output server to server instead of relaying every hop through the client (needs
   * direct paths; see `SpanLinks`): true, false, or "auto" (the default: between servers on the
   * client's machine, and where the client is farther from the servers than they are from each
   * other, see `pushPays`).
   */
  readonly push?: boolean | "auto";
  /** Reuse of finished generations' sessions by `leaseSession` (session_pool.ts; default on). */
  readonly pool?: Pick<SessionPoolOptions<SwarmInferenceSession>, "maxIdle" | "idleMs" | "maxAgeMs">;
  readonly logger?: Logger;
}

export interface OpenSessionOptions {
  /** Most tokens the session will hold (prompt + new tokens, over all turns of a chat). */
  readonly maxLength: number;
  readonly batch?: number;
}

export interface ClientGenerateOptions extends GenerateOptions {
  /** Session length (default: prompt tokens + maxNewTokens). */
  readonly maxLength?: number;
}

/** A chat over one session: each `send` continues where the last reply ended. */
export class SwarmChat {
  readonly session: SwarmInferenceSession;
  readonly conversation: ConversationState = newConversation();
  readonly #client: SwarmClient;
  constructor(client: SwarmClient, session: SwarmInferenceSession) {
    this.#client = client;
    this.session = session;
  }
  /** Generates a reply to `text` (appended to the conversation so far). */
  send(text: string | readonly number[], options: GenerateOptions): Generation {
    return this.#client.generateWith(this.session, text, options, this.conversation);
  }
  close(): Promise<void> {
    return this.session.close();
  }
}

export class SwarmClient {
  readonly model: string;
  readonly numBlocks: number;
  readonly head: ClientHead;
  readonly tokenizer: Tokenizer;
  readonly bans: BanList;
  readonly pings: PingAggregator;
  readonly #o: SwarmClientOptions;
  readonly #log: Logger;
  readonly #sessions = new Set<SwarmInferenceSession>();
  readonly #pool: SessionPool<SwarmInferenceSession>;
  #stopped = false;

  constructor(options: SwarmClientOptions) {
    this.#o = options;
    this.model = options.model;
    this.head = options.head;
    this.tokenizer = options.tokenizer;
    this.numBlocks = options.numBlocks ?? options.head.info.numBlocks;
    this.#log = options.logger ?? silentLogger;
    this.bans = new BanList(options.bans);
    this.pings = new PingAggregator({ logger: this.#log });
    this.#pool = new SessionPool({
      ...options.pool,
      open: (maxLength, batch) => this.openSession({ maxLength, batch }),
      usable: (s) =>
        !s.stale &&
        s.route.every((r) => !this.bans.isBanned(r.server.peerId) && !this.bans.isSuspect(r.server.peerId)),
    });
  }

  /** Measures RTTs to the model's servers (when the transport can ping). Never throws. */
  async start({ signal }: AbortOptions = {}): Promise<void> {
    await this.measurePings({ signal });
  }

  /** Closes every open session. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#pool.stop();
    await Promise.all([...this.#sessions].map((s) => s.close()));
    this.#sessions.clear();
  }

  /** Pings the usable servers of the model and feeds the RTT averages used by routing. */
  async measurePings({ signal }: AbortOptions = {}): Promise<void> {
    const ping = this.#o.transport.ping?.bind(this.#o.transport);
    if (!ping) return;
    const servers = usableServers(this.#o.table.servers(this.model), { model: this.model });
    await this.pings.measure(servers, (s, sig) => ping(s, sig), { signal });
  }

  /** The route a new session would take now (throws `MISSING_BLOCKS`). */
  plan(maxLength = 2048): RouteSpan[] {
    return this.bans.routeAround((skip) =>
      routeInference(this.#o.table.servers(this.model), {
        model: this.model,
        start: 0,
        end: this.numBlocks,
        maxLength,
        banned: skip,
        clientRttMs: (p) => this.pings.rtt(p),
        weights: this.#o.weights,
        version: this.#o.version,
        costs: this.#o.costs,
      }), maxLength);
  }

  /** Opens an inference session over every block of the model (routed on the first step). */
  openSession(options: OpenSessionOptions): SwarmInferenceSession {
    if (this.#stopped) {
      throw new SwarmError("CLIENT_STOPPED", "the swarm client is stopped", { hint: "create a new client" });
    }
    const o: SwarmInferenceSessionOptions = {
      model: this.model,
      start: 0,
      end: this.numBlocks,
      maxLength: options.maxLength,
      batch: options.batch,
      table: this.#o.table,
      transport: this.#o.transport,
      bans: this.bans,
      pings: this.pings,
      weights: this.#o.weights,
      version: this.#o.version,
      costs: this.#o.costs,
      maxRetries: this.#o.maxRetries,
      retryBackoff: this.#o.retryBackoff,
      stepTimeoutMs: this.#o.stepTimeoutMs,
      openTimeoutMs: this.#o.openTimeoutMs,
      push: this.#o.push,
      logger: this.#log,
      onClose: () => this.#sessions.delete(session),
    };
    const session: SwarmInferenceSession = new SwarmInferenceSession(o);
    this.#sessions.add(session);
    return session;
  }

  /**
   * A session for one generation of at most `maxLength` tokens, reusing the session of a finished
   * one where it fits (see session_pool.ts); `close()` gives it back.
   */
  leaseSession(options: OpenSessionOptions): LeasedSession<SwarmInferenceSession> {
    // once stopped the pool holds nothing, so a lease opens a session, which refuses (CLIENT_STOPPED)
    this.#pool.start();
    return this.#pool.lease(options.maxLength, options.batch ?? 1);
  }

  /** How often `leaseSession` opened a session and reused one. */
  get poolStats(): Readonly<{ opened: number; reused: number; retired: number }> {
    return { ...this.#pool.stats };
  }

  /** A chat whose turns share one session (the prefix is never recomputed). */
  chat(options: OpenSessionOptions): SwarmChat {
    return new SwarmChat(this, this.openSession(options));
  }

  /** One generation in a fresh session that is closed when the iteration ends. */
  generate(prompt: string | readonly number[], options: ClientGenerateOptions): Generation {
    const promptLen = typeof prompt === "string" ? this.tokenizer.encode(prompt).length : prompt.length;
    const maxLength = options.maxLength ?? promptLen + options.maxNewTokens;
    const session = this.openSession({ maxLength });
    return this.generateWith(session, prompt, options, newConversation(), () => session.close());
  }

  /**
   * Cache-less forward of `hidden [B, T, H]` through every block (batch work, long prefills without
   * a session): spans chosen at random weighted by throughput; a failed server is banned and the
   * rest re-routed from the failed block (bounded retries).
   */
  async forward(
    hidden: Hidden,
    options: { signal?: AbortSignal; start?: number; end?: number } = {},
  ): Promise<Hidden> {
    const end = options.end ?? this.numBlocks;
    let block = options.start ?? 0;
    let x = hidden;
    let failures = 0;
    const maxRetries = this.#o.maxRetries ?? 5;
    while (block < end) {
      options.signal?.throwIfAborted();
      const route = this.bans.routeAround((skip) =>
        routeForward(this.#o.table.servers(this.model), {
          model: this.model,
          start: block,
          end,
          banned: skip,
          weights: this.#o.weights,
          version: this.#o.version,
        })
      );
      for (const span of route) {
        try {
          x = await withTimeout(
            this.#o.stepTimeoutMs ?? 120_000,
            (signal) =>
              this.#o.transport.forward(span.server, {
                model: this.model,
                start: span.start,
                end: span.end,
                hidden: x,
              }, { signal }),
            { signal: options.signal },
          );
          this.bans.succeed(span.server.peerId);
          block = span.end;
        } catch (err) {
          if (options.signal?.aborted) throw options.signal.reason ?? err;
          this.bans.ban(span.server.peerId);
          this.#log.warn("forward failed; re-routing", {
            peer: span.server.peerId,
            blocks: `${span.start}:${span.end}`,
            error: errorMessage(err),
          });
          if (++failures > maxRetries) {
            throw new SwarmError(
              "FORWARD_FAILED",
              `forward through blocks [${span.start}, ${end}) failed ${failures} times: ${errorMessage(err)}`,
              {
                cause: err,
                hint:
                  "the servers for these blocks keep failing; retry later or check the swarm with `plumise swarm`",
              },
            );
          }
          break;
        }
      }
    }
    return x;
  }

  /** Generation over a given session (a swarm session, or any `StepSession`). */
  generateWith(
    session: StepSession,
    prompt: string | readonly number[],
    options: GenerateOptions,
    conversation: ConversationState = newConversation(),
    onEnd?: () => Promise<void> | void,
  ): Generation {
    return new Generation(
      { head: this.head, tokenizer: this.tokenizer, session, conversation, onEnd },
      prompt,
      { prefillChunkTokens: this.#o.prefillChunkTokens, ...options },
    );
  }
}
