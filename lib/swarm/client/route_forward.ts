/**
 * Forward (cache-less, batch) routing: from the current block, pick one of the servers covering it
 * at random with weight = announced throughput, jump to the end of its span, repeat. Spreads load
 * while favouring fast servers.
 * @module
 */
import { SwarmError } from "../../errors.ts";
import { missingBlocks, missingBlocksError, type ServerFilter, usableServers } from "./route_inference.ts";
import type { RouteServer, RouteSpan } from "./types.ts";

export interface ForwardRouteOptions extends ServerFilter {
  readonly start: number;
  readonly end: number;
  /** Random source in [0, 1) (default Math.random). */
  readonly random?: () => number;
}

/** Weighted-random chain of spans over `[start, end)`; throws `MISSING_BLOCKS` when a block is uncovered. */
export function routeForward(servers: readonly RouteServer[], options: ForwardRouteOptions): RouteSpan[] {
  const { start, end } = options;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end)) {
    throw new SwarmError("BAD_ROUTE_RANGE", `cannot route blocks [${start}, ${end})`, {
      hint: "start and end must be integers with 0 ≤ start < end",
    });
  }
  const usable = usableServers(servers, options);
  const missing = missingBlocks(usable, start, end);
  if (missing.length > 0) throw missingBlocksError(options.model, missing, usable.length);
  const random = options.random ?? Math.random;
  const route: RouteSpan[] = [];
  for (let b = start; b < end;) {
    const cands = usable.filter((s) => s.start <= b && b < s.end);
    const weights = cands.map((
      s,
    ) => (Number.isFinite(s.throughput) && s.throughput > 0 ? s.throughput : 1e-6));
    const total = weights.reduce((x, y) => x + y, 0);
    let r = random() * total, pick = cands.length - 1;
    for (let i = 0; i < cands.length; i++) {
      r -= weights[i];
      if (r < 0) {
        pick = i;
        break;
      }
    }
    const server = cands[pick];
    const e = Math.min(server.end, end);
    route.push({ server, start: b, end: e });
    b = e;
  }
  return route;
}
