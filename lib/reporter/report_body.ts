/**
 * The exact Oracle report (docs/protocol.md, "Oracle"): the body with exactly the whitelisted camelCase
 * keys, the exact signed message `{"agent":…,"processed_tokens":…,"timestamp":…}`, and validation.
 * @module
 */
import type { Signer } from "../chain/types.ts";
import { ReporterError } from "../errors.ts";
import type { ContributionSnapshot } from "../util/metrics.ts";

export interface ReportProof {
  readonly modelHash: string;
  readonly inputHash: string;
  readonly outputHash: string;
  readonly tokenCount: number;
}

export interface ReportBody {
  readonly wallet: string;
  readonly tokensProcessed: number;
  readonly avgLatencyMs: number;
  readonly uptimeSeconds: number;
  readonly requestCount: number;
  readonly timestamp: number;
  readonly signature: string;
  readonly proofs?: readonly ReportProof[];
}

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HASH = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;

/** The exact string that is signed: keys in this order, no spaces, the same `wallet` string. */
export function reportMessage(wallet: string, tokensProcessed: number, timestamp: number): string {
  return JSON.stringify({ agent: wallet, processed_tokens: tokensProcessed, timestamp });
}

function bad(what: string, value: unknown): never {
  throw new ReporterError("REPORT_INVALID", `report ${what}: ${JSON.stringify(value)?.slice(0, 100)}`, {
    hint: "this is a bug in the metrics feeding the reporter; the report is not sent",
  });
}

const isCount = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Copies only the four allowed proof keys, validated. */
export function cleanProof(p: ReportProof): ReportProof {
  for (const k of ["modelHash", "inputHash", "outputHash"] as const) {
    if (typeof p[k] !== "string" || !HASH.test(p[k])) bad(`proof ${k} is not 0x + 64 hex`, p[k]);
  }
  if (!Number.isSafeInteger(p.tokenCount) || p.tokenCount < 1) {
    bad("proof tokenCount is not an integer ≥ 1", p.tokenCount);
  }
  return {
    modelHash: p.modelHash,
    inputHash: p.inputHash,
    outputHash: p.outputHash,
    tokenCount: p.tokenCount,
  };
}

/** Normalises a signature to `0x` + 130 hex with v ∈ {27, 28}. */
export function normalizeSignature(sig: string): string {
  let s = sig.startsWith("0x") ? sig : `0x${sig}`;
  if (!SIGNATURE.test(s)) bad("signature is not 0x + 130 hex", sig);
  const v = parseInt(s.slice(130), 16);
  if (v === 0 || v === 1) s = s.slice(0, 130) + (v + 27).toString(16);
  else if (v !== 27 && v !== 28) bad("signature v is not 27/28", v);
  return s;
}

/** Checks a body against the Oracle's rules; returns a copy with exactly the allowed keys. */
export function validateReportBody(body: ReportBody): ReportBody {
  if (typeof body.wallet !== "string" || !ADDRESS.test(body.wallet)) {
    bad("wallet is not an address", body.wallet);
  }
  for (const k of ["tokensProcessed", "uptimeSeconds", "requestCount", "timestamp"] as const) {
    if (!isCount(body[k])) bad(`${k} is not an integer ≥ 0`, body[k]);
  }
  if (body.tokensProcessed > 1e9) {
    bad("tokensProcessed is above the Oracle's 1e9 limit", body.tokensProcessed);
  }
  if (typeof body.avgLatencyMs !== "number" || !Number.isFinite(body.avgLatencyMs) || body.avgLatencyMs < 0) {
    bad("avgLatencyMs is not a number ≥ 0", body.avgLatencyMs);
  }
  const out: Record<string, unknown> = {
    wallet: body.wallet,
    tokensProcessed: body.tokensProcessed,
    avgLatencyMs: Math.round(body.avgLatencyMs * 100) / 100,
    uptimeSeconds: body.uptimeSeconds,
    requestCount: body.requestCount,
    timestamp: body.timestamp,
    signature: normalizeSignature(body.signature),
  };
  if (body.proofs !== undefined && body.proofs.length > 0) out.proofs = body.proofs.map(cleanProof);
  return out as unknown as ReportBody;
}

/** Builds and signs the report for a snapshot of the cumulative counters. */
export async function buildReport(input: {
  signer: Signer;
  snapshot: ContributionSnapshot;
  timestamp: number;
  proofs?: readonly ReportProof[];
}): Promise<ReportBody> {
  const { signer, snapshot, timestamp } = input;
  const wallet = signer.address;
  const tokensProcessed = Math.floor(snapshot.tokensProcessed);
  const signature = await signer.signMessage(reportMessage(wallet, tokensProcessed, timestamp));
  return validateReportBody({
    wallet,
    tokensProcessed,
    avgLatencyMs: snapshot.avgLatencyMs,
    uptimeSeconds: Math.floor(snapshot.uptimeSeconds),
    requestCount: Math.floor(snapshot.requestCount),
    timestamp,
    signature,
    proofs: input.proofs,
  });
}
