/**
 * Test helper: a local Plumise Oracle that enforces the real Oracle's checks (docs/protocol.md, "Oracle")
 * in the real order and records what it accepted.
 *
 * ```ts ignore
 * await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
 * // oracle.url, oracle.accepted, oracle.setSkew(61), oracle.stop(), oracle.restart()
 * ```
 * @module
 */
import { isAddress, verifyMessage } from "ethers";

const REPORT_KEYS = new Set([
  "wallet",
  "tokensProcessed",
  "avgLatencyMs",
  "uptimeSeconds",
  "requestCount",
  "timestamp",
  "signature",
  "proofs",
]);
const PROOF_KEYS = new Set(["modelHash", "inputHash", "outputHash", "tokenCount"]);
const REGISTER_KEYS = new Set([
  "address",
  "endpoint",
  "capabilities",
  "timestamp",
  "signature",
  "benchmarkTokPerSec",
  "lanIp",
  "canDistribute",
]);

export interface AcceptedReport {
  wallet: string;
  tokensProcessed: number;
  avgLatencyMs: number;
  uptimeSeconds: number;
  requestCount: number;
  timestamp: number;
  signature: string;
  proofs?: Array<{ modelHash: string; inputHash: string; outputHash: string; tokenCount: number }>;
  /** Stub clock (unix s) when it was accepted. */
  receivedAt: number;
}

export interface RejectedRequest {
  path: string;
  status: number;
  message: string;
  body: unknown;
}

export interface NodeRegistration {
  address: string;
  endpoint: string;
  capabilities: string[];
  timestamp: number;
  benchmarkTokPerSec?: number;
}

/** `ok`: real behaviour; `http500`; `garbage`: 201 with a non-JSON body; `hang`: never answers. */
export type OracleMode = "ok" | "http500" | "garbage" | "hang";

export interface OracleStubOptions {
  /** The chain RPC (the proxy) used for `agent_isAgentAccount`. */
  rpcUrl: string;
  /** Seconds added to the stub's clock (default 0). */
  skewSeconds?: number;
}

export interface OracleStub extends AsyncDisposable {
  /** Stays the same across stop()/restart(). */
  readonly url: string;
  readonly accepted: AcceptedReport[];
  readonly rejected: RejectedRequest[];
  readonly nodeRegistrations: NodeRegistration[];
  /** Number of HTTP requests received on the report endpoint (all modes). */
  readonly reportAttempts: () => number;
  setSkew(seconds: number): void;
  setMode(mode: OracleMode): void;
  /** Resolves when at least `n` reports were accepted, rejects after `timeoutMs` (default 30 s). */
  waitForAccepted(n: number, timeoutMs?: number): Promise<void>;
  /** Resolves when at least `n` requests were rejected. */
  waitForRejected(n: number, timeoutMs?: number): Promise<void>;
  /** Closes the listener (the port stays reserved by nothing: restart() binds it again). */
  stop(): Promise<void>;
  restart(): Promise<void>;
}

class HttpFail extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const isInt = (v: unknown, min = 0) => typeof v === "number" && Number.isInteger(v) && v >= min;
const isHash = (v: unknown) => typeof v === "string" && /^0x[0-9a-fA-F]{64}$/.test(v);

function validateReport(b: unknown): AcceptedReport {
  if (typeof b !== "object" || b === null || Array.isArray(b)) {
    throw new HttpFail(400, "body must be an object");
  }
  const body = b as Record<string, unknown>;
  for (const k of Object.keys(body)) {
    if (!REPORT_KEYS.has(k)) throw new HttpFail(400, `property ${k} should not exist`);
  }
  if (typeof body.wallet !== "string" || !isAddress(body.wallet)) {
    throw new HttpFail(400, "wallet must be an address");
  }
  for (const k of ["tokensProcessed", "uptimeSeconds", "requestCount"]) {
    if (!isInt(body[k])) throw new HttpFail(400, `${k} must be an integer not less than 0`);
  }
  if (typeof body.avgLatencyMs !== "number" || !Number.isFinite(body.avgLatencyMs) || body.avgLatencyMs < 0) {
    throw new HttpFail(400, "avgLatencyMs must be a number not less than 0");
  }
  if (!isInt(body.timestamp, Number.MIN_SAFE_INTEGER)) {
    throw new HttpFail(400, "timestamp must be an integer");
  }
  if (typeof body.signature !== "string") throw new HttpFail(400, "signature must be a string");
  if (body.proofs !== undefined) {
    if (!Array.isArray(body.proofs)) throw new HttpFail(400, "proofs must be an array");
    for (const p of body.proofs) {
      if (typeof p !== "object" || p === null) throw new HttpFail(400, "each proof must be an object");
      for (const k of Object.keys(p)) {
        if (!PROOF_KEYS.has(k)) throw new HttpFail(400, `proofs.${k} should not exist`);
      }
      const q = p as Record<string, unknown>;
      if (!isHash(q.modelHash) || !isHash(q.inputHash) || !isHash(q.outputHash) || !isInt(q.tokenCount, 1)) {
        throw new HttpFail(400, "proof fields must be three 32-byte hex strings and tokenCount ≥ 1");
      }
    }
  }
  return body as unknown as AcceptedReport;
}

/** Starts the stub on a free 127.0.0.1 port. */
export function startOracleStub(options: OracleStubOptions): Promise<OracleStub> {
  let skew = options.skewSeconds ?? 0;
  let mode: OracleMode = "ok";
  const accepted: AcceptedReport[] = [];
  const rejected: RejectedRequest[] = [];
  const nodeRegistrations: NodeRegistration[] = [];
  const lastTimestamp = new Map<string, number>();
  const hanging = new Set<() => void>();
  const waiters = new Set<() => void>();
  let attempts = 0;
  const now = () => Math.floor(Date.now() / 1000) + skew;
  const notify = () => {
    for (const w of waiters) w();
  };

  const isRegistered = async (wallet: string): Promise<boolean> => {
    const res = await fetch(options.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "agent_isAgentAccount",
        params: [wallet, "latest"],
      }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.json();
    return body.result === true;
  };

  const reply = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), {
      status,
      headers: { "content-type": "application/json", date: new Date(now() * 1000).toUTCString() },
    });

  const handleReport = async (raw: unknown): Promise<Response> => {
    const report = validateReport(raw);
    const t = now();
    if (Math.abs(t - report.timestamp) > 60) throw new HttpFail(401, "Invalid signature");
    const message = JSON.stringify({
      agent: report.wallet,
      processed_tokens: report.tokensProcessed,
      timestamp: report.timestamp,
    });
    if (!/^0x[0-9a-fA-F]{130}$/.test(report.signature)) throw new HttpFail(401, "Invalid signature");
    let recovered: string;
    try {
      recovered = verifyMessage(message, report.signature);
    } catch {
      throw new HttpFail(401, "Invalid signature");
    }
    if (recovered.toLowerCase() !== report.wallet.toLowerCase()) throw new HttpFail(401, "Invalid signature");
    if (!(await isRegistered(report.wallet))) throw new HttpFail(400, "Agent not registered on-chain");
    const key = report.wallet.toLowerCase();
    const last = lastTimestamp.get(key);
    if (last !== undefined && report.timestamp <= last) {
      throw new HttpFail(400, `Replay detected: timestamp ${report.timestamp} is not after ${last}`);
    }
    if (report.tokensProcessed > 1e9) throw new HttpFail(400, "tokensProcessed exceeds 1e9");
    lastTimestamp.set(key, report.timestamp);
    accepted.push({ ...report, receivedAt: t });
    return reply(201, { success: true, message: "Metrics recorded successfully", shouldReset: false });
  };

  const handleNodeRegister = (raw: unknown): Response => {
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new HttpFail(400, "body must be an object");
    }
    const b = raw as Record<string, unknown>;
    for (const k of Object.keys(b)) {
      if (!REGISTER_KEYS.has(k)) throw new HttpFail(400, `property ${k} should not exist`);
    }
    if (typeof b.address !== "string" || !isAddress(b.address)) {
      throw new HttpFail(400, "address must be an address");
    }
    if (typeof b.endpoint !== "string" || !/^https?:\/\//.test(b.endpoint)) {
      throw new HttpFail(400, "endpoint must be a URL");
    }
    if (!Array.isArray(b.capabilities) || !b.capabilities.every((c) => typeof c === "string")) {
      throw new HttpFail(400, "capabilities must be an array of strings");
    }
    if (!isInt(b.timestamp)) throw new HttpFail(400, "timestamp must be an integer");
    if (typeof b.signature !== "string") throw new HttpFail(400, "signature must be a string");
    if (Math.abs(now() - (b.timestamp as number)) > 60) throw new HttpFail(401, "Invalid signature");
    const message = JSON.stringify({
      address: b.address,
      endpoint: b.endpoint,
      capabilities: b.capabilities,
      timestamp: b.timestamp,
    });
    let recovered = "";
    try {
      recovered = verifyMessage(message, b.signature);
    } catch {
      // falls through to 401
    }
    if (recovered.toLowerCase() !== b.address.toLowerCase()) throw new HttpFail(401, "Invalid signature");
    nodeRegistrations.push({
      address: b.address,
      endpoint: b.endpoint,
      capabilities: b.capabilities as string[],
      timestamp: b.timestamp as number,
      benchmarkTokPerSec: typeof b.benchmarkTokPerSec === "number" ? b.benchmarkTokPerSec : undefined,
    });
    return reply(201, { success: true, message: "Node registered" });
  };

  const handler = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    const isReport = path === "/api/v1/metrics/report";
    if (isReport) attempts++;
    if (mode === "hang") {
      await new Promise<void>((resolve) => {
        hanging.add(resolve);
      });
      return new Response("gone", { status: 503 });
    }
    if (mode === "http500") return new Response("Internal Server Error", { status: 500 });
    if (mode === "garbage") return new Response("<html>502 bad gateway", { status: 201 });
    let body: unknown = undefined;
    try {
      if (request.method === "POST") {
        try {
          body = await request.json();
        } catch {
          throw new HttpFail(400, "body is not JSON");
        }
        if (isReport) return await handleReport(body);
        if (path === "/api/nodes/register") return handleNodeRegister(body);
      }
      const m = path.match(/^\/api\/v1\/metrics\/agents\/(0x[0-9a-fA-F]{40})$/);
      if (request.method === "GET" && m) {
        const mine = accepted.filter((r) => r.wallet.toLowerCase() === m[1].toLowerCase());
        const last = mine.at(-1);
        if (!last) throw new HttpFail(404, "Agent not found");
        return reply(200, {
          address: last.wallet,
          epoch: 0,
          tokensProcessed: last.tokensProcessed,
          avgLatencyMs: last.avgLatencyMs,
          requestCount: last.requestCount,
          uptimeSeconds: last.uptimeSeconds,
          lastUpdated: new Date(last.receivedAt * 1000).toISOString(),
        });
      }
      throw new HttpFail(404, `Cannot ${request.method} ${path}`);
    } catch (err) {
      const status = err instanceof HttpFail ? err.status : 500;
      const message = err instanceof Error ? err.message : String(err);
      rejected.push({ path, status, message, body });
      return reply(status, {
        statusCode: status,
        message,
        error: status === 401 ? "Unauthorized" : "Bad Request",
      });
    } finally {
      notify();
    }
  };

  let server: Deno.HttpServer<Deno.NetAddr> | undefined = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    handler,
  );
  const port = server.addr.port;

  const waitFor = (cond: () => boolean, what: string, timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      if (cond()) return resolve();
      const done = () => {
        if (!cond()) return;
        clearTimeout(timer);
        waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        waiters.delete(done);
        reject(
          new Error(
            `oracle stub: timed out waiting for ${what} (accepted ${accepted.length}, rejected ${rejected.length})`,
          ),
        );
      }, timeoutMs);
      waiters.add(done);
    });

  const stop = async () => {
    for (const r of hanging) r();
    hanging.clear();
    const s = server;
    server = undefined;
    await s?.shutdown();
  };
  return Promise.resolve({
    url: `http://127.0.0.1:${port}`,
    accepted,
    rejected,
    nodeRegistrations,
    reportAttempts: () => attempts,
    setSkew(seconds) {
      skew = seconds;
    },
    setMode(m) {
      mode = m;
      if (m !== "hang") {
        for (const r of hanging) r();
        hanging.clear();
      }
    },
    waitForAccepted: (n, timeoutMs = 30_000) =>
      waitFor(() => accepted.length >= n, `${n} accepted reports`, timeoutMs),
    waitForRejected: (n, timeoutMs = 30_000) =>
      waitFor(() => rejected.length >= n, `${n} rejected requests`, timeoutMs),
    stop,
    restart() {
      if (!server) server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, handler);
      return Promise.resolve();
    },
    [Symbol.asyncDispose]: stop,
  });
}
