/**
 * Is the Oracle there, and how far apart are the clocks? One `GET` of the agent's view (or of
 * the base URL when no wallet is known): any HTTP answer below 500 means reachable (404 is "no
 * report from this agent yet"); the skew is the server's `Date` header against this machine's
 * clock at the middle of the round trip. The Oracle refuses reports whose timestamp is more than
 * 60 s off its clock (docs/protocol.md, "Oracle"), so a skew beyond
 * {@link SKEW_WARN_SECONDS} is worth fixing before going live.
 * @module
 */
import { oracleEndpoint, oracleRequest } from "./_oracle_http.ts";
import { SKEW_WARN_SECONDS } from "./oracle_reporter.ts";

export { SKEW_WARN_SECONDS };

export interface OracleProbe {
  readonly url: string;
  readonly status: number;
  /** Server clock minus this machine's, in seconds (Date header resolution: ±1 s); undefined without a Date header. */
  readonly skewSeconds?: number;
  readonly roundTripMs: number;
}

/** Probes the Oracle; throws ReporterError ORACLE_UNREACHABLE / ORACLE_TIMEOUT when nothing answers. */
export async function probeOracle(
  oracleUrl: string,
  address: string | undefined,
  options: { signal?: AbortSignal; timeoutMs?: number; fetch?: typeof fetch; now?: () => number } = {},
): Promise<OracleProbe> {
  const now = options.now ?? Date.now;
  const url = oracleEndpoint(oracleUrl, address ? `/api/v1/metrics/agents/${address}` : "/");
  const t0 = now();
  const reply = await oracleRequest(url, {
    method: "GET",
    timeoutMs: options.timeoutMs ?? 10_000,
    signal: options.signal,
    fetch: options.fetch,
  });
  const t1 = now();
  return {
    url,
    status: reply.status,
    skewSeconds: reply.serverTimeMs === undefined
      ? undefined
      : Math.round((reply.serverTimeMs - (t0 + t1) / 2) / 1000),
    roundTripMs: t1 - t0,
  };
}
