/**
 * `checkReachability`: a one-off answer to "can peers on the internet reach this machine?", for
 * `plumise doctor` (a running node shows its own in `/health`). It starts a short-lived peer that
 * listens on the given host and port, connects to the initial peers, asks them to dial it back
 * (dial_back.ts) and returns the decision (reachability.ts): `public`, `private` (behind NAT or a
 * firewall: a node here serves through relays) or `unknown` (too few peers saw it from outside).
 * @module
 */
import type { PrivateKey } from "@libp2p/interface";
import { sleep } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import type { NatScope, ReachabilityStatus } from "./reachability.ts";
import { SwarmPeer } from "./swarm_peer.ts";

export interface CheckReachabilityOptions {
  /** Bootstrap multiaddrs with /p2p/<peer id> (two or more public peers decide). */
  readonly initialPeers: readonly string[];
  /** Listen address (default 0.0.0.0). */
  readonly host?: string;
  /** Listen port (default 0: any; the swarm port tells whether a port forward works). */
  readonly port?: number;
  readonly privateKey?: PrivateKey;
  /** Give up after this long (default 15 s). */
  readonly timeoutMs?: number;
  readonly logger?: Logger;
  readonly signal?: AbortSignal;
  /** NAT_SCOPE (default public). */
  readonly scope?: NatScope;
}

/** The reachability of a peer listening on host:port, as the initial peers see it. */
export async function checkReachability(options: CheckReachabilityOptions): Promise<
  ReachabilityStatus & {
    /** Initial peers that answered. */
    readonly peersReached: number;
  }
> {
  const peer = new SwarmPeer({
    privateKey: options.privateKey ?? (await ephemeralIdentity()).privateKey,
    host: options.host ?? "0.0.0.0",
    port: options.port ?? 0,
    initialPeers: options.initialPeers,
    dht: false,
    logger: options.logger ?? silentLogger,
    nat: { relayService: "off", reservations: 0, scope: options.scope },
  });
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  try {
    await peer.start({ signal: options.signal });
    const monitor = peer.nat.monitor!;
    let status = await monitor.check();
    while (status.status === "unknown" && Date.now() < deadline && !options.signal?.aborted) {
      // peers answer one dial-back per 10 s each: wait for the ones still connecting
      await sleep(Math.min(1_000, Math.max(0, deadline - Date.now())), { signal: options.signal }).catch(
        () => {},
      );
      status = await monitor.check();
      if (peer.node.getConnections().length === 0) break;
    }
    return { ...status, peersReached: peer.initialPeersReached };
  } finally {
    await peer.stop();
  }
}
