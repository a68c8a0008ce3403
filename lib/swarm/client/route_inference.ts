/**
 * Inference routing as pure functions: which servers may be used (filters), which blocks nobody
 * serves (`MISSING_BLOCKS`), and the cheapest chain of spans over `[start, end)` where entering a
 * server costs the latency to it, every block costs `1 / inferenceRps`, every hop a fixed overhead,
 * and a server without enough free cache a large penalty. A server reached only through a relay
 * (behind NAT) costs an extra leg: the relay's hop overhead, and, where no ping measured the way
 * through the relay, twice the assumed delay. A server is left only at the end of its span (or at
 * the end of the route).
 * @module
 */
import { SwarmError } from "../../errors.ts";
import { withDefaults } from "../../util/with_defaults.ts";
import type { RouteServer, RouteSpan, ServerWeights } from "./types.ts";

/** Which servers may be used at all. */
export interface ServerFilter {
  readonly model: string;
  /** Peers to skip (banned after failures). */
  readonly banned?: (peerId: string) => boolean;
  /** Insist on a weight format. */
  readonly weights?: ServerWeights;
  /** Minimum compatible version (same major, not older); servers without a version are skipped. */
  readonly version?: string;
}

/** Costs in milliseconds (Petals' constants by default). */
export interface RouteCosts {
  /** Fixed cost of every hop (serialization, framing). */
  readonly hopOverheadMs: number;
  /** One-way delay assumed when no ping is known. */
  readonly defaultDelayMs: number;
  /** Cap on a one-way delay (a failed ping counts as this). */
  readonly maxDelayMs: number;
  /** Per-block speed assumed when a server announces none. */
  readonly defaultInferenceRps: number;
  /** Added when a server cannot reserve the cache the session needs. */
  readonly cachePenaltyMs: number;
  /** Fixed cost of the extra leg through a relay (entering a server that uses one). */
  readonly relayHopMs: number;
}

export const DEFAULT_ROUTE_COSTS: RouteCosts = Object.freeze({
  hopOverheadMs: 18,
  defaultDelayMs: 150,
  maxDelayMs: 5000,
  defaultInferenceRps: 300,
  cachePenaltyMs: 10_000,
  relayHopMs: 18,
});

export interface InferenceRouteOptions extends ServerFilter {
  /** First block (inclusive) and end (exclusive) of the range to route. */
  readonly start: number;
  readonly end: number;
  /** Session length; with `batch`, sets the cache each server must reserve. */
  readonly maxLength: number;
  readonly batch?: number;
  /** Smoothed client→server RTT in ms (undefined = unknown, Infinity = unreachable). */
  readonly clientRttMs?: (peerId: string) => number | undefined;
  readonly costs?: Partial<RouteCosts>;
}

function parseVersion(v: string): number[] | undefined {
  const m = /^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v.trim());
  return m ? [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)] : undefined;
}

/** True when `actual` has the major version of `required` and is not older. */
export function versionCompatible(required: string, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  const r = parseVersion(required), a = parseVersion(actual);
  if (!r || !a || r[0] !== a[0]) return false;
  for (let i = 1; i < 3; i++) if (a[i] !== r[i]) return a[i] > r[i];
  return true;
}

/** The servers routing may use: online, this model, a non-empty span, not banned, right weights/version. */
export function usableServers(servers: readonly RouteServer[], filter: ServerFilter): RouteServer[] {
  return servers.filter((s) =>
    s.state === "online" && s.model === filter.model && Number.isInteger(s.start) &&
    Number.isInteger(s.end) &&
    s.end > s.start && s.start >= 0 && !(filter.banned?.(s.peerId)) &&
    (filter.weights === undefined || s.weights === filter.weights) &&
    (filter.version === undefined || versionCompatible(filter.version, s.version))
  );
}

/** Blocks of `[start, end)` that no server in `servers` covers. */
export function missingBlocks(servers: readonly RouteServer[], start: number, end: number): number[] {
  const out: number[] = [];
  for (let b = start; b < end; b++) if (!servers.some((s) => s.start <= b && b < s.end)) out.push(b);
  return out;
}

/** "0, 3..5, 9" */
export function formatBlocks(blocks: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < blocks.length;) {
    let j = i;
    while (j + 1 < blocks.length && blocks[j + 1] === blocks[j] + 1) j++;
    parts.push(j === i ? `${blocks[i]}` : `${blocks[i]}..${blocks[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}

/** The `MISSING_BLOCKS` error, listing the blocks. */
export function missingBlocksError(
  model: string,
  blocks: readonly number[],
  known: number,
  skipped = 0,
): SwarmError {
  const list = formatBlocks(blocks);
  return new SwarmError(
    "MISSING_BLOCKS",
    `no usable online server serves block${blocks.length === 1 ? "" : "s"} ${list} of ${model} ` +
      `(${known} usable server${known === 1 ? "" : "s"} known` +
      (skipped > 0 ? `; ${skipped} more skipped: banned, not online, or other weights/version` : "") + ")",
    {
      hint: "wait for servers to join or come back, start one that covers them " +
        `(plumise serve --model ${model} --block-indices ${blocks[0]}:${blocks[blocks.length - 1] + 1}), ` +
        "or check --initial-peers",
      details: { model, blocks: [...blocks], usable: known, skipped },
    },
  );
}

/** Formats a route for logs: `0:4 via 12D3…abcd => 4:8 via …`. */
export function describeRoute(route: readonly RouteSpan[]): string {
  return route.map((s) => `${s.start}:${s.end} via ${shortPeer(s.server.peerId)}`).join(" => ");
}

/** Last 6 characters of a peer id, prefixed with "…". */
export function shortPeer(peerId: string): string {
  return peerId.length <= 8 ? peerId : `…${peerId.slice(-6)}`;
}

interface Label {
  cost: number;
  hops: number;
  prev: Label | undefined;
  span: RouteSpan | undefined;
  key: string;
}

/** A route and its predicted cost per step in ms (`1000 / costMs` steps/s). */
export interface InferencePlan {
  readonly spans: RouteSpan[];
  readonly costMs: number;
}

/**
 * The cheapest chain of spans over `[start, end)` (a shortest path over (server, block) where a
 * server is left only at the end of its span). Throws `MISSING_BLOCKS` when a block is uncovered.
 */
export function routeInference(servers: readonly RouteServer[], options: InferenceRouteOptions): RouteSpan[] {
  return planInference(servers, options).spans;
}

/** `routeInference` plus the predicted cost. */
export function planInference(
  servers: readonly RouteServer[],
  options: InferenceRouteOptions,
): InferencePlan {
  const { start, end } = options;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end)) {
    throw new SwarmError("BAD_ROUTE_RANGE", `cannot route blocks [${start}, ${end})`, {
      hint: "start and end must be integers with 0 ≤ start < end",
    });
  }
  const c = withDefaults(DEFAULT_ROUTE_COSTS, options.costs);
  const usable = usableServers(servers, options);
  const missing = missingBlocks(usable, start, end);
  if (missing.length > 0) {
    const skipped = servers.filter((s) => s.model === options.model).length - usable.length;
    throw missingBlocksError(options.model, missing, usable.length, skipped);
  }

  const batch = options.batch ?? 1;
  // a measured RTT to a relayed server went through its relay already; an assumed one did not
  const delay = (rtt: number | undefined, to?: RouteServer) =>
    rtt === undefined || Number.isNaN(rtt)
      ? c.defaultDelayMs * (to?.usingRelay ? 2 : 1)
      : Math.min(Math.max(0, rtt) / 2, c.maxDelayMs);
  const clientDelay = (s: RouteServer) => delay(options.clientRttMs?.(s.peerId), s);
  const blockCost = (s: RouteServer) =>
    1000 / (s.inferenceRps !== undefined && s.inferenceRps > 0 ? s.inferenceRps : c.defaultInferenceRps);

  // best label per boundary b (start..end) and last server; boundaries only grow, so a DP in order of b
  const best = new Map<number, Map<string, Label>>();
  const put = (b: number, label: Label) => {
    let m = best.get(b);
    if (!m) best.set(b, m = new Map());
    const old = m.get(label.key);
    if (!old || better(label, old)) m.set(label.key, label);
  };
  const better = (a: Label, b: Label) =>
    a.cost < b.cost - 1e-9 || Math.abs(a.cost - b.cost) <= 1e-9 && (a.hops < b.hops || a.hops === b.hops &&
          routeKey(a) < routeKey(b));
  const routeKey = (l: Label): string =>
    (l.prev ? routeKey(l.prev) + "|" : "") + (l.span?.server.peerId ?? "");

  put(start, { cost: 0, hops: 0, prev: undefined, span: undefined, key: "" });
  const boundaries = () => [...best.keys()].filter((b) => b < end).sort((x, y) => x - y);
  const done = new Set<number>();
  for (;;) {
    const b = boundaries().find((x) => !done.has(x));
    if (b === undefined) break;
    done.add(b);
    for (const from of best.get(b)!.values()) {
      for (const q of usable) {
        if (!(q.start <= b && b < q.end) || q.peerId === from.span?.server.peerId) continue;
        const e = Math.min(q.end, end);
        const prevServer = from.span?.server;
        const hopDelay = (prevServer
          ? delay(prevServer.nextPings?.[q.peerId] ?? options.clientRttMs?.(q.peerId), q)
          : clientDelay(q)) + (q.usingRelay ? c.relayHopMs : 0);
        const needed = batch * options.maxLength * (e - b);
        const penalty = q.cacheTokensLeft !== undefined && q.cacheTokensLeft < needed ? c.cachePenaltyMs : 0;
        const cost = from.cost + hopDelay + c.hopOverheadMs + penalty + (e - b) * blockCost(q) +
          (e === end ? clientDelay(q) : 0);
        put(e, {
          cost,
          hops: from.hops + 1,
          prev: from,
          span: { server: q, start: b, end: e },
          key: q.peerId,
        });
      }
    }
  }
  const finals = best.get(end);
  if (!finals || finals.size === 0) throw missingBlocksError(options.model, missing, usable.length);
  let win: Label | undefined;
  for (const l of finals.values()) if (!win || better(l, win)) win = l;
  const spans: RouteSpan[] = [];
  for (let l: Label | undefined = win; l?.span; l = l.prev) spans.unshift(l.span);
  return { spans, costMs: win!.cost };
}
