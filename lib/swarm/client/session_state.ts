/**
 * What the parts of one `SwarmInferenceSession` share: its options, the chain of spans (each with
 * its server, remote session, input history, link and lock), its position and counters, and the
 * two checks every part makes (a reply's shape, a history cut back to a position).
 *
 * The parts, one job each: routing and opening remote sessions (span_routing.ts), bounded retries
 * with bans (span_retries.ts), a step relayed span by span with replay (relay_step.ts), background
 * linking and when a push pays (span_links.ts), a step pushed server to server (push_step.ts); the
 * session (swarm_inference_session.ts) coordinates them.
 * @module
 */
import { SwarmError } from "../../errors.ts";
import type { BackoffOptions } from "../../util/backoff.ts";
import { type Logger, silentLogger } from "../../util/logger.ts";
import { Mutex } from "../../util/mutex.ts";
import { firstNonFinite } from "../../wire/first_non_finite.ts";
import { BanList } from "./ban_list.ts";
import { sliceTokens, tokenCount } from "./hidden_ops.ts";
import { PingAggregator } from "./ping_aggregator.ts";
import type { RouteCosts } from "./route_inference.ts";
import type {
  Hidden,
  PushTicket,
  RemoteSpanSession,
  RouteServer,
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
  /**
   * The most one remote step may take, replay included (default 60 s); shorter steps get less
   * (`stepDeadlineMs`: 15 s plus 10 ms per token).
   */
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

/** One range of the session's blocks and what the client holds for it. */
export interface SpanState {
  readonly start: number;
  readonly end: number;
  server?: RouteServer;
  remote?: RemoteSpanSession;
  /**
   * One exchange at a time with `remote` (its stream reads its replies in order): a step and the
   * background linking never talk to one remote session at once.
   */
  readonly lock: Mutex;
  /** The last attempt to link `remote` to the next span's remote (push its outputs there). */
  link?: SpanLink;
  /** Set while the first step's open-ahead of `remote` is in flight (settles, never rejects). */
  opening?: Promise<void>;
  /**
   * The open-ahead ran out of time (`TIMEOUT`): the step fails the server with it rather than
   * waiting a second open timeout there. Other failures leave it unset: the step opens again.
   */
  openTimedOut?: unknown;
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

/** A link from one span's remote session to the next one's. */
export interface SpanLink {
  readonly from: RemoteSpanSession;
  readonly to: RemoteSpanSession;
  /** The input link's ticket from `to` (its loss makes the link untrusted). */
  readonly ticket: PushTicket;
  readonly ok: boolean;
}

/** What a step carries from one span to the next. */
export interface Flow {
  /** The step's new positions. */
  last: Hidden;
  /** Every position from 0, when the upstream span has just been replayed. */
  full?: Hidden;
}

let counter = 0;

/** The state of one session, shared by its parts. */
export class SessionState {
  readonly id: string;
  readonly model: string;
  readonly start: number;
  readonly end: number;
  readonly maxLength: number;
  readonly batch: number;
  readonly options: SwarmInferenceSessionOptions;
  readonly bans: BanList;
  readonly pings: PingAggregator;
  readonly log: Logger;
  readonly stats: SessionStats = { steps: 0, failures: 0, replacements: 0, replayedTokens: 0, pushed: 0 };
  /** The spans, in block order; rerouting replaces one by the spans of its new route. */
  chain: SpanState[];
  /** Tokens in the servers' caches. */
  position = 0;
  /** Whether the whole range was routed once (by `open` or the first step). */
  routed = false;
  closed = false;
  /**
   * Servers that refused this session as longer than they take (`TOO_LONG`): routed around for the
   * rest of it (its maxLength does not change). Not banned for the client's other sessions: one
   * request must not take the servers out for everyone.
   */
  readonly refusedBy = new Set<string>();
  #remoteSeq = 0;

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
    this.options = options;
    this.id = options.sessionId ??
      `${Date.now().toString(36)}-${(++counter).toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
    this.model = options.model;
    this.start = start;
    this.end = end;
    this.maxLength = maxLength;
    this.batch = batch;
    this.bans = options.bans ?? new BanList();
    this.pings = options.pings ?? new PingAggregator();
    this.log = (options.logger ?? silentLogger).child({ session: this.id });
    this.chain = [newSpan(start, end, [])];
  }

  /** The id of the next remote session opened for this session. */
  nextRemoteId(): string {
    return `${this.id}.${++this.#remoteSeq}`;
  }

  assertOpen(): void {
    if (this.closed) {
      throw new SwarmError("SESSION_CLOSED", `session ${this.id} is closed`, { hint: "open a new session" });
    }
  }

  /** A reply must be `[batch, tokens sent, hidden]` float32; anything else is the server's failure. */
  checkReply(span: SpanState, y: Hidden, input: Hidden): void {
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
    // NaN or infinity would reach the sampler (every later span passes it on) and fail the
    // generation there, on every request routed through this server
    const k = firstNonFinite(y.data);
    if (k >= 0) {
      throw new SwarmError(
        "BAD_REPLY",
        `server ${span.server!.peerId} answered a non-finite value (${y.data[k]}) at index ${k}`,
        { hint: "the server is broken; it is banned and replaced" },
      );
    }
  }
}

/** A span of `[start, end)` with nothing open yet. */
export function newSpan(
  start: number,
  end: number,
  history: Hidden[] | null,
  server?: RouteServer,
): SpanState {
  return { start, end, server, history, lock: new Mutex() };
}

/** The first `p` token positions of `history` (which must hold at least that many). */
export function truncateHistory(history: Hidden[], p: number): Hidden[] {
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
