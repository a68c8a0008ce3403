/**
 * `GET {ORACLE_API_URL}/api/v1/metrics/agents/{address}`: the Oracle's view of an agent, for `status`.
 * @module
 */
import { ReporterError } from "../errors.ts";
import { oracleEndpoint, oracleRequest, replyMessage } from "./_oracle_http.ts";

export interface OracleAgentView {
  readonly address: string;
  readonly epoch?: number;
  readonly tokensProcessed: number;
  readonly avgLatencyMs?: number;
  readonly requestCount: number;
  readonly uptimeSeconds?: number;
  readonly lastUpdated?: string;
}

const num = (v: unknown) =>
  typeof v === "number" && Number.isFinite(v)
    ? v
    : typeof v === "string" && v !== "" && Number.isFinite(Number(v))
    ? Number(v)
    : undefined;

export async function fetchOracleAgentView(
  oracleUrl: string,
  address: string,
  options: { signal?: AbortSignal; timeoutMs?: number; fetch?: typeof fetch } = {},
): Promise<OracleAgentView> {
  const url = oracleEndpoint(oracleUrl, `/api/v1/metrics/agents/${address}`);
  const reply = await oracleRequest(url, {
    ...options,
    method: "GET",
    timeoutMs: options.timeoutMs ?? 10_000,
  });
  if (reply.status !== 200) {
    throw new ReporterError("ORACLE_VIEW_UNAVAILABLE", `HTTP ${reply.status}: ${replyMessage(reply)}`, {
      hint: reply.status === 404 ? "the Oracle has no report from this agent yet" : "check ORACLE_API_URL",
    });
  }
  const j = reply.json as Record<string, unknown> | undefined;
  const tokens = num(j?.tokensProcessed);
  const requests = num(j?.requestCount);
  if (!j || typeof j !== "object" || tokens === undefined || requests === undefined) {
    throw new ReporterError("ORACLE_VIEW_UNAVAILABLE", `unexpected reply: ${reply.text.slice(0, 100)}`, {
      hint: "check ORACLE_API_URL points at the Plumise Oracle",
    });
  }
  return {
    address: String(j.address ?? address),
    epoch: num(j.epoch),
    tokensProcessed: tokens,
    avgLatencyMs: num(j.avgLatencyMs),
    requestCount: requests,
    uptimeSeconds: num(j.uptimeSeconds),
    lastUpdated: typeof j.lastUpdated === "string" ? j.lastUpdated : undefined,
  };
}
