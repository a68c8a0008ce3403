/**
 * The swarm side of the node: a `SwarmServer` (libp2p, table, signed record, protocol handlers
 * feeding the shared metrics) as a `NodeSwarm`. Adds what the composition needs around it:
 * the persisted peer identity, a pinned `--block-indices` span, a tie-break for servers that start
 * at the same moment and chose the same window, a drain with a grace period, and the coverage
 * summary for /health.
 * @module
 */
import type { CoverageSummary } from "../api/types.ts";
import type { Config } from "../config/types.ts";
import type { BlockRuntime } from "../runtime/types.ts";
import { sleep } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import { PROTOCOL_VERSION } from "../util/version.ts";
import { chooseBestBlocks } from "../swarm/block_selection.ts";
import { loadOrCreateIdentity } from "../swarm/peer_identity.ts";
import { type RebalanceOptions, SwarmServer, type ThroughputFigures } from "../swarm/swarm_server.ts";
import { pinnedSpan } from "./pinned_span.ts";
import type { NodeSpan, NodeSwarm, ReachabilityView } from "./types.ts";
import type { NatStatus } from "../swarm/peer_nat.ts";

export interface SwarmPartOptions {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** The loaded runtime (asked for at `serve`). */
  readonly runtime: () => BlockRuntime;
  /** Announced throughput figures (asked for at `serve`). */
  readonly figures: () => ThroughputFigures;
  /**
   * Loads the blocks of a new span when rebalancing moves this server, makes them current (so
   * `runtime()` returns them) and returns a function that unloads the old ones. Without it the
   * server never moves.
   */
  readonly move?: (span: NodeSpan, options: { signal: AbortSignal }) => Promise<() => Promise<void>>;
  /** Rebalancing timing (tests); default: a check every U(0, 120) s. */
  readonly rebalance?: RebalanceOptions;
  /** The agent's address announced in the record (undefined in offline mode). */
  readonly wallet?: string;
  /** Wait for simultaneous joiners' records before settling on a span (default 750 ms; only with peers). */
  readonly settleMs?: number;
  readonly announcePeriodMs?: number;
}

export interface SwarmPart extends NodeSwarm {
  readonly server: SwarmServer;
}

export async function createSwarmPart(o: SwarmPartOptions): Promise<SwarmPart> {
  const { config, logger } = o;
  const identity = await loadOrCreateIdentity(config.identityPath, logger);
  const server = new SwarmServer({
    privateKey: identity.privateKey,
    host: config.p2pHost,
    port: config.p2pPort,
    announceIp: config.announceIp,
    initialPeers: config.initialPeers,
    model: config.model,
    weights: config.weights,
    version: PROTOCOL_VERSION,
    wallet: o.wallet ?? null,
    metrics: o.metrics,
    logger: logger.child({ part: "swarm" }),
    announcePeriodMs: o.announcePeriodMs,
    pinned: config.blockIndices !== undefined,
    rebalance: o.rebalance,
    sessionLimits: { maxSessions: config.maxSessions, idleMs: config.sessionIdleTimeout * 1000 },
    forwardLimits: { maxConcurrent: config.forwardMaxConcurrent, maxQueued: config.forwardMaxQueued },
    nat: {
      relayService: config.relayService,
      reservations: config.relayReservations,
      holePunch: config.holePunch,
      scope: config.natScope,
    },
    relayLimits: {
      maxReservations: config.relayMaxReservations,
      maxCircuits: config.relayMaxCircuits,
      circuitBytes: config.relayCircuitMib * 1024 * 1024,
      circuitMs: config.relayCircuitSeconds * 1000,
    },
    upnp: config.upnp,
  });
  if (o.move && !config.blockIndices) {
    const move = o.move;
    server.onMove(async (span, { signal }) => {
      logger.debug("rebalancing: moving to less covered blocks", { to: `${span.start}:${span.end}` }); // the swarm server says it at info
      const unloadOld = await move(span, { signal });
      await server.serve(o.runtime(), o.figures());
      await unloadOld();
    });
  }
  let totalBlocks = 0;
  let stopped = false;

  const othersOf = () => server.table.servers(config.model).filter((r) => r.peerId !== server.peerId);
  // Joining servers have not measured their throughput yet: count each as 1 so they still count.
  const pick = () =>
    chooseBestBlocks(
      othersOf().map((r) => ({ ...r, throughput: Math.max(r.throughput, 1) })),
      totalBlocks,
      config.numBlocks,
    );

  const part: SwarmPart = {
    server,
    start: (options) => server.start(options),
    async chooseSpan(total, { signal }) {
      totalBlocks = total;
      if (config.numBlocks > total && !config.blockIndices) {
        logger.warn("NUM_BLOCKS is more than the model has: serving all of them", {
          numBlocks: config.numBlocks,
          modelBlocks: total,
        });
      }
      const pinned = pinnedSpan(config, total);
      if (pinned) return pinned;
      let span = pick();
      if (othersOf().length === 0) return span;
      // Servers that start together may pick the same window: announce it, let records spread,
      // and let the server with the larger peer id move.
      await server.announce("joining", span);
      await sleep(o.settleMs ?? 750, { signal });
      const clash = othersOf().some((r) =>
        r.state === "joining" && r.start === span.start && r.end === span.end && r.peerId < server.peerId
      );
      if (clash) {
        const again = pick();
        logger.info("another server joined with the same blocks; choosing again", {
          from: `${span.start}:${span.end}`,
          to: `${again.start}:${again.end}`,
        });
        span = again;
      }
      return span;
    },
    announce: (state, span: NodeSpan) => server.announce(state, span),
    serve: () => server.serve(o.runtime(), o.figures()),
    async drain(graceMs) {
      const deadline = Date.now() + graceMs;
      while (server.sessions > 0 && Date.now() < deadline && !stopped) {
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())));
      }
    },
    async stop() {
      stopped = true;
      await server.stop();
    },
    status() {
      let peerId: string | undefined;
      let addrs: string[] | undefined;
      try {
        peerId = server.peerId;
        addrs = server.peer.multiaddrs();
      } catch {
        return {};
      }
      return {
        peerId,
        addrs,
        coverage: totalBlocks > 0 ? coverage() : undefined,
        span: server.span,
        reachability: reachabilityView(server.peer.natStatus()),
      };
    },
  };

  function coverage(): CoverageSummary {
    const online = server.table.servers(config.model).filter((r) => r.state === "online");
    const covered = new Array<boolean>(totalBlocks).fill(false);
    for (const r of online) for (let b = r.start; b < Math.min(r.end, totalBlocks); b++) covered[b] = true;
    const n = covered.filter(Boolean).length;
    return { totalBlocks, coveredBlocks: n, complete: n === totalBlocks, servers: online.length };
  }

  return part;
}

/** This node's reachability as /health shows it (snake_case, JSON-safe). */
export function reachabilityView(nat: NatStatus | undefined): ReachabilityView | undefined {
  if (!nat) return undefined;
  const r = nat.reachability;
  return {
    status: r.status,
    ...(r.observedHost ? { observed_host: r.observedHost } : {}),
    reason: r.reason,
    relays: [...nat.relays],
    relaying: nat.relaying,
    ...(nat.relaying ? { relayed_circuits: nat.circuits } : {}),
  };
}
