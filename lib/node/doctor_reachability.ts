/**
 * The reachability check of `plumise doctor` (docs/operations.md, "Behind NAT"): a short-lived
 * peer on the swarm port (any free port when a running node holds it) asks the initial peers to
 * dial it back (lib/swarm/check_reachability.ts). Behind NAT is no failure — the node serves
 * through relays — unless it may not use any (RELAY_RESERVATIONS=0).
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import type { Config } from "../config/types.ts";
import { errorMessage } from "../errors.ts";
import { checkReachability } from "../swarm/check_reachability.ts";
import type { DoctorCheck } from "./doctor_checks.ts";

/** What the check needs of the peers' verdict (checkReachability's result). */
export interface ReachabilityVerdict {
  readonly status: "public" | "private" | "unknown";
  readonly observedHost?: string;
  readonly confirmations: number;
  readonly reason: string;
  readonly peersReached: number;
}

/** The doctor's line for a verdict (pure). */
export function reachabilityCheck(config: Config, v: ReachabilityVerdict, port: number): DoctorCheck {
  const name = "reachability";
  const forward = `forward TCP port ${config.p2pPort} on the router to this machine (or try --upnp)`;
  if (v.status === "public") {
    return {
      name,
      ok: true,
      detail:
        `reachable from the internet: yes — ${v.confirmations} peers connected back to ${v.observedHost}:${port}`,
    };
  }
  if (v.status === "private") {
    if (config.relayReservations === 0) {
      return {
        name,
        ok: false,
        detail:
          `reachable from the internet: no — behind NAT (${v.reason}), and RELAY_RESERVATIONS=0 forbids relays`,
        hint: `${forward}, or allow relays (RELAY_RESERVATIONS=2)`,
      };
    }
    return {
      name,
      ok: true,
      detail: `reachable from the internet: no — behind NAT (${v.reason}); serving through relays ` +
        `(${config.relayReservations} slots)${
          config.holePunch ? ", sessions hole punched where the NATs allow" : ""
        }`,
      hint: `to be reached directly (no relay leg): ${forward}`,
    };
  }
  return {
    name,
    ok: true,
    detail: `reachable from the internet: unknown — ${v.reason} (${v.peersReached} initial peer(s) answered)`,
  };
}

/** Runs the check against the configured initial peers. Never throws. */
export async function checkReachabilityForDoctor(
  config: Config,
  { signal }: AbortOptions = {},
): Promise<DoctorCheck> {
  if (config.initialPeers.length === 0) {
    return {
      name: "reachability",
      ok: true,
      detail: "no initial peers: reachability is decided once peers join (this node starts a swarm)",
    };
  }
  // the swarm port itself tells whether a port forward works; a running node holds it, then any port
  let port = config.p2pPort;
  try {
    Deno.listen({ hostname: config.p2pHost, port, transport: "tcp" }).close();
  } catch {
    port = 0;
  }
  try {
    const v = await checkReachability({
      initialPeers: config.initialPeers,
      host: config.p2pHost,
      port,
      signal,
    });
    return reachabilityCheck(config, v, port || config.p2pPort);
  } catch (err) {
    return {
      name: "reachability",
      ok: false,
      detail: `cannot ask the initial peers: ${errorMessage(err)}`,
      hint: "check PETALS_INITIAL_PEERS and that those nodes run",
    };
  }
}
