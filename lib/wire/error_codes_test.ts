import assert from "node:assert/strict";
import { RuntimeError, TimeoutError, WireError } from "../errors.ts";
import { ERROR_CODES, errorCodeOf, isErrorCode, protocolError } from "./error_codes.ts";

Deno.test("error codes: stable list, mapping of thrown values", () => {
  assert.deepEqual([...ERROR_CODES], [
    "BAD_FRAME",
    "TOO_LARGE",
    "WRONG_MODEL",
    "SPAN_NOT_SERVED",
    "CACHE_FULL",
    "SESSION_LIMIT",
    "TIMEOUT",
    "INTERNAL",
  ]);
  assert.ok(isErrorCode("CACHE_FULL"));
  assert.ok(!isErrorCode("cache_full"));
  assert.equal(errorCodeOf(new WireError("TOO_LARGE", "x")), "TOO_LARGE");
  assert.equal(errorCodeOf(new TimeoutError("slow")), "TIMEOUT");
  assert.equal(errorCodeOf(new RuntimeError("ORT_FAILED", "boom")), "INTERNAL");
  assert.equal(errorCodeOf(new Error("plain")), "INTERNAL");
  const e = protocolError("SPAN_NOT_SERVED", "blocks 3..9 not served");
  assert.equal(e.code, "SPAN_NOT_SERVED");
  assert.match(e.hint, /re-route/);
});
