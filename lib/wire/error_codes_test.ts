import assert from "node:assert/strict";
import { type ErrorCode, RuntimeError, TimeoutError, WireError } from "../errors.ts";
import {
  errorCodeOf,
  isProtocolErrorCode,
  PROTOCOL_ERROR_CODES,
  protocolError,
  protocolMessage,
  toProtocolCode,
} from "./error_codes.ts";

Deno.test("error codes: stable list, mapping of thrown values", () => {
  assert.deepEqual([...PROTOCOL_ERROR_CODES], [
    "BAD_FRAME",
    "TOO_LARGE",
    "WRONG_MODEL",
    "SPAN_NOT_SERVED",
    "CACHE_FULL",
    "SESSION_LIMIT",
    "TIMEOUT",
    "INTERNAL",
    "BUSY",
    "TOO_LONG",
  ]);
  assert.ok(isProtocolErrorCode("CACHE_FULL"));
  assert.ok(!isProtocolErrorCode("cache_full"));
  assert.ok(!isProtocolErrorCode("NO_PEERS"), "a registry code that never travels in error frames");
  assert.equal(errorCodeOf(new WireError("TOO_LARGE", "x")), "TOO_LARGE");
  assert.equal(errorCodeOf(new TimeoutError("slow")), "TIMEOUT");
  assert.equal(errorCodeOf(new RuntimeError("ENGINE_FAILED", "boom")), "INTERNAL");
  assert.equal(errorCodeOf(new Error("plain")), "INTERNAL");
  const e = protocolError("SPAN_NOT_SERVED", "blocks 3..9 not served");
  assert.equal(e.code, "SPAN_NOT_SERVED");
  assert.match(e.hint, /re-route/);
});

Deno.test("error codes: toProtocolCode maps runtime, timeout and abort errors; protocolMessage caps", () => {
  const rt = (code: ErrorCode) => toProtocolCode(new RuntimeError(code, `runtime ${code}`));
  assert.equal(rt("BAD_SPAN"), "SPAN_NOT_SERVED");
  assert.equal(rt("BAD_INPUT"), "BAD_FRAME");
  assert.equal(rt("TOO_LONG"), "TOO_LONG");
  assert.equal(rt("UNKNOWN_SESSION"), "BAD_FRAME");
  assert.equal(rt("CACHE_FULL"), "CACHE_FULL");
  assert.equal(rt("TIMEOUT"), "TIMEOUT");
  assert.equal(rt("ENGINE_FAILED"), "INTERNAL");
  assert.equal(rt("NOT_RUNNING"), "INTERNAL");
  // protocol codes pass through unchanged
  assert.equal(toProtocolCode(protocolError("SESSION_LIMIT", "full")), "SESSION_LIMIT");
  assert.equal(toProtocolCode(new WireError("TOO_LARGE", "big")), "TOO_LARGE");
  assert.equal(toProtocolCode(new TimeoutError("idle")), "TIMEOUT");
  // aborts and timeouts from the platform
  const abort = new Error("The operation was aborted");
  abort.name = "AbortError";
  assert.equal(toProtocolCode(abort), "TIMEOUT");
  assert.equal(toProtocolCode(new DOMException("signal timed out", "TimeoutError")), "TIMEOUT");
  assert.equal(toProtocolCode(AbortSignal.abort().reason), "TIMEOUT");
  // anything else
  assert.equal(toProtocolCode(new Error("plain")), "INTERNAL");
  assert.equal(toProtocolCode(new TypeError("x is undefined")), "INTERNAL");
  assert.equal(toProtocolCode("a string"), "INTERNAL");
  assert.equal(toProtocolCode(undefined), "INTERNAL");

  assert.equal(protocolMessage(new RuntimeError("TOO_LONG", "step of 9 tokens")), "step of 9 tokens");
  assert.equal(protocolMessage("thrown string"), "thrown string");
  assert.equal(protocolMessage(42), "42");
  const exact = "x".repeat(1000);
  assert.equal(protocolMessage(new Error(exact)), exact, "1000 characters pass unchanged");
  const long = protocolMessage(new Error("y".repeat(5000)));
  assert.equal(long.length, 1000);
  assert.ok(long.startsWith("y".repeat(997)));
  assert.ok(long.endsWith("..."));
});
