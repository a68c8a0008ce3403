/**
 * `observeSwarm`: joins the swarm as a pure client (no listening, fresh identity), pulls the
 * table from the bootstrap peers and returns a snapshot of its entries, then leaves. Used by
 * `plumise swarm`.
 * @module
 */
import { ConfigError, SwarmError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import { parsePeerAddrs } from "./libp2p_node.ts";
import { SwarmPeer } from "./swarm_peer.ts";
import type { TableEntry } from "./swarm_table.ts";

export interface ObserveSwarmOptions {
  /** Bootstrap multiaddrs (with /p2p/<peer id>). */
  initialPeers: readonly string[];
  /** Timeout of each bootstrap dial + table pull (default 5 s). */
  requestMs?: number;
  maxFrameBytes?: number;
  logger?: Logger;
  signal?: AbortSignal;
  now?: () => number;
}

export interface SwarmSnapshot {
  /** Every live entry (all models, offline ones included), sorted by peer id. */
  entries: TableEntry[];
  /** Bootstrap peers that answered the table pull, out of `initialPeers`. */
  initialPeersReached: number;
  initialPeers: number;
  /** Unix ms when the snapshot was taken. */
  takenAt: number;
}

/** Pulls the swarm table from the bootstrap peers. Throws SwarmError when none is given or none answers. */
export async function observeSwarm(options: ObserveSwarmOptions): Promise<SwarmSnapshot> {
  if (options.initialPeers.length === 0) {
    // a usage error (exit 2), as for generate
    throw new ConfigError(
      "NO_INITIAL_PEERS",
      "no bootstrap peer given: there is nobody to ask for the swarm table",
      {
        hint: "pass --initial-peers /ip4/…/tcp/…/p2p/<peer id> (or set PETALS_INITIAL_PEERS)",
      },
    );
  }
  parsePeerAddrs(options.initialPeers); // ConfigError with the offending address
  const now = options.now ?? Date.now;
  const peer = new SwarmPeer({
    privateKey: (await ephemeralIdentity()).privateKey,
    noListen: true,
    dht: false,
    initialPeers: options.initialPeers,
    requestMs: options.requestMs,
    maxFrameBytes: options.maxFrameBytes,
    logger: options.logger ?? silentLogger,
    now,
  });
  try {
    await peer.start({ signal: options.signal });
    options.signal?.throwIfAborted();
    const reached = peer.initialPeersReached;
    if (reached === 0) {
      throw new SwarmError(
        "NO_PEER_ANSWERED",
        `none of the ${options.initialPeers.length} bootstrap peer(s) answered: ${
          options.initialPeers.join(", ")
        }`,
        {
          hint:
            "check that the address, port and peer id are right and that the node is running (see its log)",
        },
      );
    }
    return {
      entries: peer.table.entries(),
      initialPeersReached: reached,
      initialPeers: options.initialPeers.length,
      takenAt: now(),
    };
  } finally {
    await peer.stop();
  }
}
