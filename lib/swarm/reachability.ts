/**
 * Whether this node can be reached from the internet, decided from other peers' dial-backs
 * (AutoNAT's idea; docs/protocol.md, "Reachability"). A peer that we are connected to tells us the
 * address our connection came from and whether a fresh connection to that address and our listen
 * port reached us. Verdicts count only where the peer saw a public address (a loopback or
 * private-network view says nothing about the internet), one per verifying host, and only while
 * recent. Two agreeing verdicts decide: `public` (dialed back) or `private` (behind NAT or a
 * firewall); anything less is `unknown`.
 * @module
 */
import { addressScope } from "../wire/mod.ts";

export type Reachability = "public" | "private" | "unknown";

/**
 * Which addresses count as "the internet" for reachability and hole punching (NAT_SCOPE):
 * `public` (default) — public addresses only; `private` — private ones too, for a private network
 * with NATs inside it (sites joined over a WAN, and the NAT test bed, which must use the
 * benchmarking range 198.18.0.0/15). Loopback never counts.
 */
export type NatScope = "public" | "private";

/** Whether `host` is an address on "the internet" under `scope`. */
export function onInternet(host: string, scope: NatScope = "public"): boolean {
  const s = addressScope(host);
  return s === "public" || (scope === "private" && s === "private");
}

/** One peer's answer to "dial me back". */
export interface ReachVerdict {
  /** The verifying peer's id. */
  readonly verifier: string;
  /** The verifying peer's address as we reached it (one verdict per host counts). */
  readonly verifierHost: string;
  /** Our address as the verifier saw it. */
  readonly observedHost: string;
  /** Whether its fresh connection to observedHost:port reached us. */
  readonly dialed: boolean;
  /** When (ms since the epoch). */
  readonly at: number;
}

/** This node's reachability and why. */
export interface ReachabilityStatus {
  readonly status: Reachability;
  /** Our public address as the verifiers saw it (the most frequent view). */
  readonly observedHost?: string;
  /** Verdicts that agree with `status`. */
  readonly confirmations: number;
  /** Verdicts counted (recent, from public views, one per verifier host). */
  readonly counted: number;
  /** When the newest counted verdict came. */
  readonly checkedAt?: number;
  /** In words, for logs, `/health` and `plumise doctor`. */
  readonly reason: string;
}

/** Agreeing verdicts that decide (from different hosts). */
export const REACH_CONFIRMATIONS = 2;
/** Verdicts older than this no longer count (default 30 min). */
export const REACH_VERDICT_MAX_AGE_MS = 30 * 60_000;

/** The initial status. */
export const UNKNOWN_REACHABILITY: ReachabilityStatus = Object.freeze({
  status: "unknown",
  confirmations: 0,
  counted: 0,
  reason: "not checked yet",
});

/** Decides reachability from verdicts (pure). */
export function decideReachability(
  verdicts: readonly ReachVerdict[],
  now: number,
  options: { needed?: number; maxAgeMs?: number; scope?: NatScope } = {},
): ReachabilityStatus {
  const needed = options.needed ?? REACH_CONFIRMATIONS;
  const maxAge = options.maxAgeMs ?? REACH_VERDICT_MAX_AGE_MS;
  const latest = new Map<string, ReachVerdict>();
  let ignored = 0;
  for (const v of verdicts) {
    if (now - v.at > maxAge) continue;
    if (!onInternet(v.observedHost, options.scope)) {
      ignored++;
      continue;
    }
    const old = latest.get(v.verifierHost);
    if (!old || v.at >= old.at) latest.set(v.verifierHost, v);
  }
  const counted = [...latest.values()];
  const ok = counted.filter((v) => v.dialed).length;
  const failed = counted.length - ok;
  const hosts = new Map<string, { n: number; at: number }>();
  for (const v of counted) {
    const h = hosts.get(v.observedHost) ?? { n: 0, at: 0 };
    hosts.set(v.observedHost, { n: h.n + 1, at: Math.max(h.at, v.at) });
  }
  const observedHost = [...hosts.entries()].sort((a, b) => b[1].n - a[1].n || b[1].at - a[1].at)[0]?.[0];
  const checkedAt = counted.length ? Math.max(...counted.map((v) => v.at)) : undefined;
  const base = {
    counted: counted.length,
    ...(observedHost ? { observedHost } : {}),
    ...(checkedAt ? { checkedAt } : {}),
  };
  if (ok >= needed && ok >= failed) {
    return {
      ...base,
      status: "public",
      confirmations: ok,
      reason: `${ok} peer${ok === 1 ? "" : "s"} reached this node at ${observedHost} from outside`,
    };
  }
  if (failed >= needed && failed > ok) {
    return {
      ...base,
      status: "private",
      confirmations: failed,
      reason: `${failed} peers could not connect back to ${observedHost}: behind NAT or a firewall`,
    };
  }
  const why = counted.length === 0
    ? ignored > 0
      ? "the peers see this node at a loopback or private address (a local swarm says nothing about the internet)"
      : "no peer on the internet has checked yet"
    : `${ok} of ${counted.length} peers reached this node; ${needed} agreeing are needed`;
  return { ...base, status: "unknown", confirmations: 0, reason: why };
}
