/** Maps runtime/timeout errors to protocol error codes for error frames. @module */
import { PlumiseError } from "../errors.ts";
import { type ErrorCode, errorCodeOf, isErrorCode } from "../wire/mod.ts";

/** The protocol code for any error a handler caught. */
export function toProtocolCode(err: unknown): ErrorCode {
  if (err instanceof PlumiseError) {
    if (isErrorCode(err.code)) return err.code;
    switch (err.code) {
      case "CACHE_FULL":
        return "CACHE_FULL";
      case "BAD_SPAN":
        return "SPAN_NOT_SERVED";
      case "BAD_INPUT":
      case "TOO_LONG":
      case "UNKNOWN_SESSION":
        return "BAD_FRAME";
      case "TIMEOUT":
        return "TIMEOUT";
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
