/**
 * Interfaces of the swarm client: what it needs from the swarm table, from the wire
 * protocol client (as a narrow `SpanTransport`), and from the runtime's client head and
 * tokenizer. Adapters map the real implementations onto these; tests use fakes.
 * @module
 */

import type { AbortOptions } from "../../util/abort.ts";
import type { HiddenStates } from "../../runtime/types.ts";

/** Hidden states `[B, T, H]`, row-major float32 (the runtime's `HiddenStates`). */
export type Hidden = HiddenStates;

/** Weight formats a server can announce. */
export type ServerWeights = "fp32" | "int8" | "int4";

/** What routing needs from one server's announcement (a structural subset of the signed record). */
export interface RouteServer {
  readonly peerId: string;
  readonly model: string;
  /** First block served (inclusive). */
  readonly start: number;
  /** End of the span (exclusive). */
  readonly end: number;
  readonly state: "joining" | "online" | "offline";
  /** Tokens/s the server can sustain for the whole chain (forward routing weight). */
  readonly throughput: number;
  /** Inference steps per second per block (each block costs `1 / inferenceRps`). */
  readonly inferenceRps?: number;
  /** KV cache tokens left (batch × length × blocks); undefined = unknown (no penalty). */
  readonly cacheTokensLeft?: number;
  readonly weights?: ServerWeights;
  readonly version?: string;
  /** RTTs in ms to other servers, by peer id. */
  readonly nextPings?: Readonly<Record<string, number>>;
  /** Reached only through a relay (behind NAT): every leg to it crosses the relay too. */
  readonly usingRelay?: boolean;
}

/** A read-only view of the swarm table. */
export interface SwarmTableView {
  /** Verified, unexpired records for `model`. */
  servers(model: string): readonly RouteServer[];
  /**
   * Asks peers for fresh records (optional; called before re-routing after a failure). What it
   * resolves to is the implementation's (the pulled table's: how many peers answered).
   */
  refresh?(options?: AbortOptions): Promise<unknown>;
}

/** One span of a route: `server` computes blocks `[start, end)` (a sub-range of its span). */
export interface RouteSpan {
  readonly server: RouteServer;
  readonly start: number;
  readonly end: number;
}

/** A cache-less forward through `[start, end)` of one server. */
export interface ForwardSpanRequest {
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly hidden: Hidden;
}

export interface OpenSpanRequest {
  readonly sessionId: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly maxLength: number;
  readonly batch: number;
}

export interface SpanStepOptions {
  /** Increases from step to step of the client session; the same on every span of one step. */
  readonly stepId: number;
  /** Roll the server cache back to this position before the step (0 = replay from scratch). */
  readonly startFromPosition: number;
  readonly signal?: AbortSignal;
}

/** One open inference stream to one server for one span. */
export interface RemoteSpanSession {
  /** Runs `hidden [B,T,H]` through the span; resolves with `[B,T,H]`. Rejects on any failure. */
  step(hidden: Hidden, options: SpanStepOptions): Promise<Hidden>;
  /** Frees the server cache; never throws; idempotent. */
  close(): Promise<void>;
  /** Whether the session's connection is gone (optional: transports that know). */
  readonly closed?: boolean;
  /** Links to the sessions of the next span's server (absent when the session cannot be linked). */
  readonly links?: SpanLinks;
  /**
   * How the steps travel (optional: transports that know): a direct path, a libp2p stream, a
   * stream through a relay, or a connection punched through NATs (its control still relayed).
   */
  readonly path?: "direct" | "stream" | "relayed" | "punched";
}

/** Where the next span's server takes pushed input (opaque to the session). */
export type PushTicket = unknown;

/** The reply that ends a push: the replying span's output and those of the spans before it in the push. */
export interface PushReply {
  readonly hidden: Hidden;
  /** Outputs of the spans the step was pushed through, oldest first (empty when the first one replied). */
  readonly trail: readonly Hidden[];
}

/**
 * Server-to-server push (Petals' `rpc_push`): a linked session sends its outputs straight to the
 * next span's session; only the span where the push stops replies, with the outputs of all the
 * spans it went through (the client keeps them: they are the next spans' input histories,
 * replayed after a failure). All of it is an optimization: when a push fails anywhere, the client
 * sends the step again span by span (steps roll the caches back, so running one twice is harmless).
 */
export interface SpanLinks {
  /** The session's server runs on the client's own machine (reached at a loopback address). */
  readonly local: boolean;
  /** A ticket for input pushed into this session by another server. */
  accept(options?: AbortOptions): Promise<PushTicket>;
  /** Has this session's server push its outputs to the holder of `ticket`. */
  pushTo(ticket: PushTicket, options?: AbortOptions): Promise<void>;
  /** Whether the input link of `ticket` (from this session's `accept`) was reported lost. */
  lost(ticket: PushTicket): boolean;
  /** Sends a step whose output the server pushes `push` spans on; the reply comes from where the push stops. */
  send(hidden: Hidden, options: SpanStepOptions & { readonly push: number }): Promise<void>;
  /**
   * Waits for this session's reply to step `stepId` (`pushed`: to the step pushed into it over
   * `ticket`'s link). "lost" once that link is reported lost; `undefined` once `until` aborts
   * (the session stays usable; with `until`, no step timeout applies: the caller bounds the
   * wait). Rejects, and the session is dropped, when the server fails or `signal` aborts.
   */
  receive(
    stepId: number,
    options: {
      readonly pushed: boolean;
      readonly ticket?: PushTicket;
      readonly signal?: AbortSignal;
      readonly until?: AbortSignal;
    },
  ): Promise<PushReply | "lost" | undefined>;
}

/** The client's narrow view of the wire protocol client (inference, forward, ping). */
export interface SpanTransport {
  openInference(
    server: RouteServer,
    request: OpenSpanRequest,
    options?: AbortOptions,
  ): Promise<RemoteSpanSession>;
  /** Cache-less forward through `[start, end)` of `server`. */
  forward(server: RouteServer, request: ForwardSpanRequest, options?: AbortOptions): Promise<Hidden>;
  /** Round-trip time to `server` in ms (optional). */
  ping?(server: RouteServer, options?: AbortOptions): Promise<number>;
}
