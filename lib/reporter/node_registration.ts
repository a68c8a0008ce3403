/**
 * `POST {ORACLE_API_URL}/api/nodes/register` (docs/protocol.md, "Oracle"), so the gateway can find the
 * node's public HTTP endpoint. Signed over `JSON.stringify({address, endpoint, capabilities, timestamp})`.
 * @module
 */
import type { Signer } from "../chain/types.ts";
import { ReporterError } from "../errors.ts";
import { Backoff } from "../util/backoff.ts";
import { sleep } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { oracleEndpoint, oracleRequest, replyMessage } from "./_oracle_http.ts";
import { normalizeSignature } from "./report_body.ts";

export interface NodeRegistrationOptions {
  oracleUrl: string;
  signer: Signer;
  /** The node's public HTTP API URL (PUBLIC_URL). */
  endpoint: string;
  capabilities?: readonly string[];
  benchmarkTokPerSec?: number;
  now?: () => number;
  timeoutMs?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

/** The exact signed message. */
export function nodeRegistrationMessage(
  address: string,
  endpoint: string,
  capabilities: readonly string[],
  timestamp: number,
): string {
  return JSON.stringify({ address, endpoint, capabilities, timestamp });
}

/** Registers once; throws ReporterError (`ORACLE_REFUSED` for a 4xx not in `PASSING_4XX`, others retryable). */
export async function registerNode(options: NodeRegistrationOptions): Promise<{ assignment?: unknown }> {
  let endpoint: string;
  try {
    const u = new URL(options.endpoint);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(u.protocol);
    endpoint = options.endpoint.replace(/\/+$/, "");
  } catch {
    throw new ReporterError(
      "PUBLIC_URL_INVALID",
      `PUBLIC_URL ${JSON.stringify(options.endpoint)} is not an http(s) URL`,
      {
        hint: "set --public-url to the URL the gateway can reach, e.g. https://node.example.com:31331",
      },
    );
  }
  const capabilities = [...(options.capabilities ?? ["text-generation"])];
  const timestamp = Math.floor((options.now ?? Date.now)() / 1000);
  const address = options.signer.address;
  const signature = normalizeSignature(
    await options.signer.signMessage(nodeRegistrationMessage(address, endpoint, capabilities, timestamp)),
  );
  const body: Record<string, unknown> = { address, endpoint, capabilities, timestamp, signature };
  if (options.benchmarkTokPerSec !== undefined && Number.isFinite(options.benchmarkTokPerSec)) {
    body.benchmarkTokPerSec = options.benchmarkTokPerSec;
  }
  const url = oracleEndpoint(options.oracleUrl, "/api/nodes/register");
  const reply = await oracleRequest(url, {
    method: "POST",
    body,
    timeoutMs: options.timeoutMs ?? 30_000,
    signal: options.signal,
    fetch: options.fetch,
  });
  const j = reply.json as { success?: unknown; assignment?: unknown } | undefined;
  if ((reply.status === 201 || reply.status === 200) && j?.success === true) {
    return { assignment: j.assignment };
  }
  const refused = reply.status >= 400 && reply.status < 500 && !PASSING_4XX.has(reply.status);
  throw new ReporterError(
    refused ? "ORACLE_REFUSED" : "ORACLE_BAD_REPLY",
    `node registration at ${url} answered ${reply.status}: ${replyMessage(reply)}`,
    {
      hint: refused
        ? "the Oracle refused it; check PUBLIC_URL"
        : reply.status === 401
        ? "retried with backoff; a signature refused for the time is a clock off by over a minute: sync it (NTP)"
        : "retried with backoff",
      details: { status: reply.status },
    },
  );
}

/**
 * 4xx answers that say "not now" rather than "never": a timeout (408), too early (425), too many
 * requests (429), and a signature refused (401), which a clock off by more than the Oracle's minute
 * gives until NTP fixes it. They are retried; the other 4xx are the request's own fault.
 */
const PASSING_4XX = new Set([401, 408, 425, 429]);

/**
 * Registers with retries (backoff up to 5 min between tries; `attempts`, default: until `signal`
 * aborts, so an Oracle down for an hour still learns the node's PUBLIC_URL); a 4xx refusal is
 * logged and not retried, except those that pass (`PASSING_4XX`: 401, 408, 425, 429). Never throws; resolves true when registered.
 */
export async function registerNodeWithRetry(
  options: NodeRegistrationOptions & { logger?: Logger; attempts?: number; backoffInitialMs?: number },
): Promise<boolean> {
  const logger = (options.logger ?? silentLogger).child({ part: "node-registration" });
  const backoff = new Backoff({ initialMs: options.backoffInitialMs ?? 5000, maxMs: 300_000 });
  const attempts = options.attempts ?? Infinity;
  for (let i = 1; i <= attempts; i++) {
    try {
      const r = await registerNode(options);
      logger.info("node registered with the Oracle", {
        endpoint: options.endpoint,
        assignment: r.assignment,
      });
      return true;
    } catch (err) {
      if (options.signal?.aborted) return false;
      const e = err as ReporterError;
      if (e.code === "ORACLE_REFUSED" || e.code === "PUBLIC_URL_INVALID") {
        logger.warn("node registration refused; not retrying", { error: e.message, hint: e.hint });
        return false;
      }
      if (i >= attempts) {
        logger.error("node registration failed; giving up", { error: e.message, attempts: i });
        return false;
      }
      const delay = backoff.next();
      logger.warn("node registration failed; retrying", { error: e.message, attempt: i, retryInMs: delay });
      try {
        await sleep(delay, { signal: options.signal });
      } catch {
        return false;
      }
    }
  }
  return false;
}
