/**
 * The signed server record ("announcement") of the swarm table: its fields, validation and
 * the exact bytes that are signed. Signing and verifying with the peer key happen in
 * lib/swarm (libp2p crypto); this file only fixes the format.
 *
 * On the wire a signed record is `{payload, signature}`: `payload` is the record as a JSON
 * string (the exact bytes that were signed, so no canonicalisation is needed) and
 * `signature` is base64 of the Ed25519 signature over `RECORD_SIGNING_PREFIX + payload`
 * (UTF-8). The verifier checks the signature against the public key inside `peerId`.
 * @module
 */
import { WireError } from "../errors.ts";
import { arr, bad, bool, int, isObj, num, type Obj, obj, oneOf, optInt, optStr, str } from "./_validate.ts";
import { MAX_BLOCK, RECORD_SHAPE } from "./wire_limits.ts";
import { checkJsonShape } from "./json_shape.ts";

export type ServerState = "joining" | "online" | "offline";
export const SERVER_STATES: readonly ServerState[] = ["joining", "online", "offline"];
export type RecordWeights = "fp32" | "int8" | "int4";
export const RECORD_WEIGHTS: readonly RecordWeights[] = ["fp32", "int8", "int4"];
export const REACHABILITIES: readonly ("public" | "private" | "unknown")[] = ["public", "private", "unknown"];

/** Domain separation for record signatures. */
export const RECORD_SIGNING_PREFIX = "plumise-record/1\n";
/** Largest accepted payload (characters). */
export const MAX_RECORD_PAYLOAD = 16_384;

/** What a server announces about itself. */
export interface SwarmRecord {
  /** libp2p peer id (base58); its embedded public key verifies the signature. */
  readonly peerId: string;
  /** Multiaddrs to dial it at. */
  readonly addrs: readonly string[];
  /** Hugging Face repo id (or local model name) it serves. */
  readonly model: string;
  /** Served span `[start, end)`. */
  readonly start: number;
  readonly end: number;
  readonly state: ServerState;
  /** Tokens/s the server can sustain for its whole span (selection weight). */
  readonly throughput: number;
  /** Per-block decode rate (tokens/s) measured by the runtime. */
  readonly inferenceRps: number;
  /** Per-block batch forward rate (tokens/s) measured by the runtime. */
  readonly forwardRps: number;
  /** Network rate estimate (hidden vectors/s). */
  readonly networkRps: number;
  readonly cacheTokensLeft: number;
  readonly weights: RecordWeights;
  /** plumise version. */
  readonly version: string;
  /** Agent's chain address for rewards/receipts; null when offline. */
  readonly wallet: string | null;
  readonly usingRelay: boolean;
  /** RTTs in ms to the next servers it knows, by peer id. */
  readonly nextPings: Readonly<Record<string, number>>;
  /** Monotonic per peer; newer wins. */
  readonly seq: number;
  /** Unix ms after which the record is dropped. */
  readonly expiresAt: number;
  /** Total transformer blocks of the model (optional; lets observers show blocks nobody serves at the end). */
  readonly totalBlocks?: number;
  /** Unix ms when the server started serving (optional; shown as its age). */
  readonly startedAt?: number;
  /**
   * Rebalancing intent (optional): the server still serves `start..end` but means to move to
   * this span once the others confirm its blocks stay covered without it.
   */
  readonly movingTo?: { readonly start: number; readonly end: number };
  /**
   * Whether peers can reach the server from the internet (optional; docs/protocol.md,
   * "Reachability"): `private` servers are reached through the relays in `addrs`.
   */
  readonly reachability?: "public" | "private" | "unknown";
  /** The server relays circuits for peers behind NAT (optional; absent: it does not). */
  readonly relay?: boolean;
}

/** A record as it travels: the signed JSON payload and its base64 signature. */
export interface SignedRecordWire {
  readonly payload: string;
  readonly signature: string;
}

const PEER_ID = { max: 128, pattern: /^[1-9A-HJ-NP-Za-km-z]+$/ };

/** Validates the transport shape `{payload, signature}` (not the signature itself). */
export function validateSignedRecordWire(v: unknown, field = "record"): SignedRecordWire {
  const o = obj(v, field);
  return {
    payload: str(o, "payload", { max: MAX_RECORD_PAYLOAD }, field + "."),
    signature: str(o, "signature", { max: 200, pattern: /^[A-Za-z0-9+/]+=*$/ }, field + "."),
  };
}

/** Validates every field of a record (parsed from a payload). Unknown extra fields are ignored. */
export function validateRecord(v: unknown): SwarmRecord {
  const o: Obj = obj(v, "record");
  const p = "record.";
  const start = int(o, "start", 0, MAX_BLOCK - 1, p);
  const addrs = arr(o, "addrs", 32, p);
  addrs.forEach((a, i) => {
    if (typeof a !== "string" || !a.startsWith("/") || a.length > 512) {
      bad(`${p}addrs[${i}]`, "a multiaddr string", a);
    }
  });
  const pingsObj = o.nextPings === undefined ? {} : obj(o.nextPings, p + "nextPings");
  const pingKeys = Object.keys(pingsObj);
  if (pingKeys.length > 64) bad(p + "nextPings", "at most 64 entries", pingKeys.length);
  const nextPings: Record<string, number> = {};
  for (const k of pingKeys) {
    if (!PEER_ID.pattern.test(k) || k.length > PEER_ID.max) bad(`${p}nextPings`, "keyed by peer ids", k);
    nextPings[k] = num(pingsObj, k, 0, 1e9, p + "nextPings.");
  }
  const wallet = optStr(o, "wallet", { max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ }, p) ?? null;
  const end = int(o, "end", start + 1, MAX_BLOCK, p);
  const totalBlocks = optInt(o, "totalBlocks", end, MAX_BLOCK, p);
  const startedAt = optInt(o, "startedAt", 0, Number.MAX_SAFE_INTEGER, p);
  let movingTo: { start: number; end: number } | undefined;
  if (o.movingTo !== undefined && o.movingTo !== null) {
    const mv = obj(o.movingTo, p + "movingTo");
    const ms = int(mv, "start", 0, MAX_BLOCK - 1, p + "movingTo.");
    movingTo = Object.freeze({ start: ms, end: int(mv, "end", ms + 1, MAX_BLOCK, p + "movingTo.") });
  }
  const reachability = o.reachability === undefined || o.reachability === null
    ? undefined
    : oneOf(o, "reachability", REACHABILITIES, p);
  const relay = o.relay === undefined || o.relay === null ? undefined : bool(o, "relay", p);
  return Object.freeze({
    peerId: str(o, "peerId", PEER_ID, p),
    addrs: Object.freeze(addrs as string[]),
    model: str(o, "model", { max: 256, pattern: /^[^\s\p{Cc}]+$/u }, p),
    start,
    end,
    state: oneOf(o, "state", SERVER_STATES, p),
    throughput: num(o, "throughput", 0, 1e12, p),
    inferenceRps: num(o, "inferenceRps", 0, 1e12, p),
    forwardRps: num(o, "forwardRps", 0, 1e12, p),
    networkRps: num(o, "networkRps", 0, 1e12, p),
    cacheTokensLeft: int(o, "cacheTokensLeft", 0, Number.MAX_SAFE_INTEGER, p),
    weights: oneOf(o, "weights", RECORD_WEIGHTS, p),
    version: str(o, "version", { max: 64 }, p),
    wallet,
    usingRelay: bool(o, "usingRelay", p),
    nextPings: Object.freeze(nextPings),
    seq: int(o, "seq", 0, Number.MAX_SAFE_INTEGER, p),
    expiresAt: int(o, "expiresAt", 0, Number.MAX_SAFE_INTEGER, p),
    ...(totalBlocks === undefined ? {} : { totalBlocks }),
    ...(startedAt === undefined ? {} : { startedAt }),
    ...(movingTo === undefined ? {} : { movingTo }),
    ...(reachability === undefined ? {} : { reachability }),
    ...(relay ? { relay } : {}),
  });
}

/** The JSON payload for a record (field order fixed; what gets signed). */
export function recordPayload(record: SwarmRecord): string {
  const r = validateRecord(record);
  return JSON.stringify({
    peerId: r.peerId,
    addrs: r.addrs,
    model: r.model,
    start: r.start,
    end: r.end,
    state: r.state,
    throughput: r.throughput,
    inferenceRps: r.inferenceRps,
    forwardRps: r.forwardRps,
    networkRps: r.networkRps,
    cacheTokensLeft: r.cacheTokensLeft,
    weights: r.weights,
    version: r.version,
    wallet: r.wallet,
    usingRelay: r.usingRelay,
    nextPings: r.nextPings,
    seq: r.seq,
    expiresAt: r.expiresAt,
    ...(r.totalBlocks === undefined ? {} : { totalBlocks: r.totalBlocks }),
    ...(r.startedAt === undefined ? {} : { startedAt: r.startedAt }),
    ...(r.movingTo === undefined ? {} : { movingTo: { start: r.movingTo.start, end: r.movingTo.end } }),
    ...(r.reachability === undefined ? {} : { reachability: r.reachability }),
    ...(r.relay ? { relay: true } : {}),
  });
}

/** The bytes a signature covers for `payload`. */
export function recordSigningBytes(payload: string): Uint8Array {
  return new TextEncoder().encode(RECORD_SIGNING_PREFIX + payload);
}

/** Parses and validates a signed record's payload (signature NOT checked here). */
export function parseRecordPayload(payload: string): SwarmRecord {
  if (payload.length > MAX_RECORD_PAYLOAD) {
    bad("record.payload", `at most ${MAX_RECORD_PAYLOAD} characters`, payload.length);
  }
  checkJsonShape(new TextEncoder().encode(payload), RECORD_SHAPE, "record payload");
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload);
  } catch (err) {
    throw new WireError("BAD_FRAME", `record payload is not valid JSON: ${(err as Error).message}`, {
      hint: "the peer sent a corrupt record",
      cause: err,
    });
  }
  if (!isObj(parsed)) bad("record", "a JSON object", parsed);
  return validateRecord(parsed);
}

/** Base64 (standard alphabet, padded) of bytes. */
export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return btoa(s);
}

/** Bytes of a base64 string; BAD_FRAME when malformed. */
export function fromBase64(b64: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(b64);
  } catch (err) {
    throw new WireError("BAD_FRAME", `signature is not base64: ${JSON.stringify(b64.slice(0, 40))}`, {
      hint: "the peer sent a corrupt record",
      cause: err,
    });
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
