/**
 * The error codes of the swarm protocols, sent in `error` frames: a subset of the registry
 * (`ERROR_CODES`, lib/error_codes.ts). They never change once released; a client keeps a code it does
 * not know under `REMOTE_ERROR` (the raw code in `details.remoteCode`).
 * @module
 */
import { type ErrorCode, PlumiseError, WireError } from "../errors.ts";

export const PROTOCOL_ERROR_CODES = [
  "BAD_FRAME",
  "TOO_LARGE",
  "WRONG_MODEL",
  "SPAN_NOT_SERVED",
  "CACHE_FULL",
  "SESSION_LIMIT",
  "TIMEOUT",
  "INTERNAL",
  "BUSY",
  // a session or forward longer than the server takes: the request's fault, not the server's (an
  // older server sends BAD_FRAME, an older client raises it as a server failure)
  "TOO_LONG",
] as const satisfies readonly ErrorCode[];
export type ProtocolErrorCode = typeof PROTOCOL_ERROR_CODES[number];

/** True for one of the stable protocol codes. */
export function isProtocolErrorCode(code: unknown): code is ProtocolErrorCode {
  return typeof code === "string" && (PROTOCOL_ERROR_CODES as readonly string[]).includes(code);
}

/** The protocol code to answer with for any thrown value (`INTERNAL` when it is not one of ours). */
export function errorCodeOf(err: unknown): ProtocolErrorCode {
  if (err instanceof PlumiseError && isProtocolErrorCode(err.code)) return err.code;
  if (err instanceof PlumiseError && err.code === "TIMEOUT") return "TIMEOUT";
  return "INTERNAL";
}

/** A `WireError` carrying a protocol code (what handlers throw to answer with an error frame). */
export function protocolError(code: ProtocolErrorCode, message: string, hint?: string): WireError {
  return new WireError(code, message, { hint: hint ?? defaultHint(code) });
}

function defaultHint(code: ProtocolErrorCode): string {
  switch (code) {
    case "BAD_FRAME":
      return "the peer sent a malformed or out-of-order message; check protocol versions";
    case "TOO_LARGE":
      return "send smaller chunks (split long prefills) or raise the frame cap on both sides";
    case "WRONG_MODEL":
      return "this server serves another model; pick a server from the swarm table for your model";
    case "SPAN_NOT_SERVED":
      return "this server does not serve those blocks; re-route using the swarm table";
    case "CACHE_FULL":
      return "this server has no KV cache left; route to another server or retry later";
    case "SESSION_LIMIT":
      return "this server has too many open sessions; route to another server or retry later";
    case "TIMEOUT":
      return "the session was idle or too old and was closed; open a new one";
    case "INTERNAL":
      return "the server failed; retry elsewhere and check the server's log";
    case "BUSY":
      return "this server has as much work waiting as it takes; route to another server or retry later";
    case "TOO_LONG":
      return "the session is longer than this server takes: send a shorter prompt or fewer new tokens";
  }
}

/** The protocol code for any error a handler caught (runtime and timeout codes mapped). */
export function toProtocolCode(err: unknown): ProtocolErrorCode {
  if (err instanceof PlumiseError) {
    if (isProtocolErrorCode(err.code)) return err.code;
    switch (err.code) {
      case "BAD_SPAN":
        return "SPAN_NOT_SERVED";
      case "BAD_INPUT":
      case "UNKNOWN_SESSION":
        return "BAD_FRAME";
    }
  }
  if (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError")) return "TIMEOUT";
  return errorCodeOf(err);
}

/** Message safe to send to a peer (no stack, capped). */
export function protocolMessage(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.length > 1000 ? m.slice(0, 997) + "..." : m;
}
