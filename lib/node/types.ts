/**
 * The parts the node composes, as the narrow phase interfaces the start order needs
 * (docs/architecture.md: identity → chain preflight → choose blocks → joining → load → throughput →
 * online → register → loops → API). `node_parts.ts` adapts the real runtime/swarm/chain/reporter
 * to these; node_test.ts drives the node with fakes.
 * @module
 */
import type { CoverageSummary, Generator } from "../api/types.ts";
import type { Config } from "../config/types.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";

export interface NodeSpan {
  readonly start: number;
  readonly end: number;
}

export type AnnounceState = "joining" | "online" | "offline";

/** The blocks this node serves (runtime/, loaded lazily). */
export interface NodeRuntime {
  /** Total transformer blocks of the model (from config.json; cheap, loads no weights). */
  totalBlocks(options: { signal: AbortSignal }): Promise<number>;
  /** Loads the span's blocks (downloads only what they need). */
  load(span: NodeSpan, options: { signal: AbortSignal }): Promise<void>;
  /** Tokens/s this node sustains for the whole chain (cached per machine, measured when absent). */
  throughput(options: { signal: AbortSignal }): Promise<number>;
  /** Live figures for /metrics (undefined before load). */
  figures(): { openSessions: number; cacheTokensTotal: number; cacheTokensLeft: number } | undefined;
  stop(): Promise<void>;
}

/** The swarm side (swarm/): libp2p, table, announcements, the server protocols. */
export interface NodeSwarm {
  /** Starts libp2p, bootstraps and pulls the swarm table. */
  start(options: { signal: AbortSignal }): Promise<void>;
  /** Picks the span: pinned `--block-indices`, else the least-covered window of `numBlocks`. */
  chooseSpan(totalBlocks: number, options: { signal: AbortSignal }): Promise<NodeSpan>;
  /** Publishes this server's record with `state` for `span`. */
  announce(state: AnnounceState, span: NodeSpan, options: { signal: AbortSignal }): Promise<void>;
  /** Starts serving inference/forward requests for the loaded runtime. */
  serve(throughput: number): Promise<void>;
  /**
   * Stops taking new sessions; running steps may finish until `graceMs`, then they get an error
   * frame. Resolves when no step is running.
   */
  drain(graceMs: number): Promise<void>;
  stop(): Promise<void>;
  /** `span`: the span served now (it changes when rebalancing moves the server). */
  status(): {
    peerId?: string;
    addrs?: readonly string[];
    coverage?: CoverageSummary;
    span?: NodeSpan;
    reachability?: ReachabilityView;
  };
}

/**
 * Whether peers on the internet can reach this node (docs/protocol.md, "Reachability"), as /health
 * shows it: `public`, `private` (behind NAT: reached through `relays`) or `unknown`.
 */
export interface ReachabilityView {
  readonly status: "public" | "private" | "unknown";
  /** This node's address as peers see it. */
  readonly observed_host?: string;
  readonly reason: string;
  /** Relays holding a slot for this node (peer ids). */
  readonly relays: readonly string[];
  /** Whether this node relays for peers behind NAT. */
  readonly relaying: boolean;
  readonly relayed_circuits?: number;
}

/** The chain side (chain/): absent in offline mode. */
export interface NodeChain {
  readonly address: string;
  /** Chain id check, balance; throws ConfigError on a wrong chain. */
  preflight(options: { signal: AbortSignal }): Promise<void>;
  /**
   * Registers via 0x21 only when not registered yet (idempotent), then starts the heartbeat and
   * auto-claim loops. An unreachable chain is not an error (the agent retries in the background).
   */
  start(options: { signal: AbortSignal }): Promise<void>;
  stop(): Promise<void>;
  /** JSON-safe status for /health (`registered`, last heartbeat, ...). */
  status(): Readonly<Record<string, unknown>>;
  /**
   * Called after each completed HTTP generation; with VERIFY_ON_CHAIN it sends 0x20 (in the
   * background, never throwing) and returns the proof for the next Oracle report.
   */
  recordInference?(prompt: string, output: string, tokens: number): InferenceProofLike | undefined;
  /** EIP-191 `personal_sign` with the agent's key (the gateway relay's sign-in). */
  signMessage?(message: string): Promise<string>;
}

/** `{modelHash, inputHash, outputHash, tokenCount}` (0x + 64 hex each, tokenCount ≥ 1). */
export interface InferenceProofLike {
  readonly modelHash: string;
  readonly inputHash: string;
  readonly outputHash: string;
  readonly tokenCount: number;
}

/** The Oracle reporter (reporter/): absent in offline mode. */
export interface NodeReporter {
  start(): Promise<void>;
  /** Stops the loop after one final report of the cumulative counters (bounded by `signal`). */
  stop(finalReport: boolean, options: { signal: AbortSignal }): Promise<void>;
  status(): Readonly<Record<string, unknown>>;
  /** Queues a proof for the next report. */
  addProof?(proof: InferenceProofLike): void;
}

/** Everything the node composes, built by a `NodePartsFactory` once config is resolved. */
export interface NodeParts {
  readonly runtime: NodeRuntime;
  readonly swarm: NodeSwarm;
  /** Generation through the swarm client (this node's own span counted once). */
  readonly generator: Generator;
  readonly chain?: NodeChain;
  readonly reporter?: NodeReporter;
  /** Releases what the generator holds (client swarm connection, head); after the API stopped. */
  readonly closeGenerator?: () => Promise<void>;
}

/** What a parts factory gets: the shared metrics (the swarm server feeds them, the reporter reads them). */
export interface NodePartsContext {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly signal: AbortSignal;
}

export type NodePartsFactory = (ctx: NodePartsContext) => Promise<NodeParts>;

export type NodeState = "idle" | "starting" | "online" | "stopping" | "stopped" | "failed";
