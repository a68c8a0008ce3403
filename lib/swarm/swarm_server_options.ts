/**
 * What `SwarmServer` (swarm_server.ts) is given and announces: its options (the peer's, the
 * record's figures, session and forward limits, rebalancing), the rates of its record, the move
 * listener of rebalancing and a span.
 * @module
 */
import type { PrivateKey } from "@libp2p/interface";
import type { BlockRuntime } from "../runtime/types.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import type { RecordWeights } from "../wire/mod.ts";
import type { RebalanceDecision } from "./block_selection.ts";
import type { ForwardLimits } from "./forward_gate.ts";
import type { SessionLimits } from "./session_manager.ts";
import type { SwarmPeerOptions } from "./swarm_peer.ts";

/** Rates announced in the record (see throughput.ts). */
export interface ThroughputFigures {
  throughput: number;
  inferenceRps: number;
  forwardRps: number;
  networkRps: number;
}

export interface SwarmServerOptions extends Omit<SwarmPeerOptions, "noListen"> {
  privateKey: PrivateKey;
  /** Model id announced (hub id or the local directory's name). */
  model: string;
  weights: RecordWeights;
  version: string;
  wallet?: string | null;
  metrics: Metrics;
  logger?: Logger;
  /** Re-announce period (default 30 s); the TTL defaults to 3 periods (90 s). */
  announcePeriodMs?: number;
  ttlMs?: number;
  sessionLimits?: Partial<SessionLimits>;
  /** Admission of forward requests (forward_gate.ts; `FORWARD_MAX_CONCURRENT`, `FORWARD_MAX_QUEUED`). */
  forwardLimits?: Partial<ForwardLimits>;
  /** The runtime, when already built (else pass it to `serve`). */
  runtime?: BlockRuntime;
  /** The model's total blocks, announced before a runtime serves (then taken from the runtime). */
  totalBlocks?: number;
  /**
   * Periodic rebalancing (docs/protocol.md, "Block selection"): runs while serving, when the
   * span is not `pinned` and a move listener is set (`onMove` here or the `onMove()` method).
   */
  rebalance?: RebalanceOptions;
  /** The span was pinned (`--block-indices`): never rebalance. */
  pinned?: boolean;
  /** Move listener (see `SwarmServer.onMove`). */
  onMove?: MoveListener;
}

export interface RebalanceOptions {
  /** Delay before each check (default U(0, 120) s). */
  delayMs?: () => number;
  /** Move only when min coverage grows by more than 1/balanceQuality (default 0.75). */
  balanceQuality?: number;
  /**
   * Two-phase move: the server first announces its intent (`movingTo`, still online on its old
   * span), waits this long (≫ propagation), then moves only if every block of its old span is
   * still served by an online server that does not intend to move; simultaneous movers thus
   * cannot uncover a block, not even in the announced table (default 2 s).
   */
  settleMs?: number;
  /** Randomness of the greedy simulation (tests). */
  random?: () => number;
}

/**
 * Called when rebalancing decided to move to `span`: load the blocks of `span` and call
 * `server.serve(newRuntime)` (which announces online and ends the sessions of the old span);
 * then stop the old runtime. Throwing (or not serving the new span) reverts to the old span.
 */
export type MoveListener = (span: Span, options: { signal: AbortSignal }) => Promise<void> | void;

/** Outcome of one rebalancing check. */
export type RebalanceOutcome = RebalanceDecision & { moved: boolean };

export interface Span {
  readonly start: number;
  readonly end: number;
}
