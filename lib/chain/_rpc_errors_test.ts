import assert from "node:assert/strict";
import { ChainError } from "../errors.ts";
import {
  decodeRevertReason,
  isAlreadyKnown,
  isDefiniteRefusal,
  isMethodNotFound,
  isNonceError,
  isNonceTooLow,
  toChainError,
} from "./_rpc_errors.ts";

Deno.test("rpc error classification", () => {
  const data = "0x08c379a0" + "0".repeat(62) + "20" + "0".repeat(62) + "0a" + "4e6f2072657761726473" +
    "0".repeat(44);
  assert.equal(decodeRevertReason(data), "No rewards");
  assert.ok(isMethodNotFound({ info: { error: { code: -32601, message: "x" } } }));
  assert.ok(isNonceError({ message: "nonce too low: next nonce 5" }));
  assert.ok(isNonceError({ code: "REPLACEMENT_UNDERPRICED" }));
  assert.equal(
    toChainError({ code: "CALL_EXCEPTION", reason: "nope" }, "eth_call", "u").code,
    "CHAIN_REVERT",
  );
  assert.equal(
    toChainError({ code: "BAD_DATA", message: "missing response" }, "m", "u").code,
    "CHAIN_BAD_RESPONSE",
  );
  assert.equal(toChainError(new Error("connect ECONNREFUSED"), "m", "u").code, "CHAIN_UNREACHABLE");
  const poor = toChainError(
    { code: "UNKNOWN_ERROR", error: { code: -32003, message: "Insufficient funds for gas * price + value" } },
    "eth_sendRawTransaction",
    "u",
  );
  assert.equal(poor.code, "INSUFFICIENT_FUNDS");
  assert.match(poor.hint, /send the agent's address .* a little PLM for gas/);
});

Deno.test("'already known' is a pending tx, not a nonce error, also when wrapped in a ChainError", () => {
  for (const message of ["already known", "transaction already imported", "ErrAlreadyKnown"]) {
    const wrapped = toChainError({ error: { code: -32000, message } }, "eth_sendRawTransaction", "u");
    assert.ok(wrapped instanceof ChainError);
    assert.ok(isAlreadyKnown(wrapped), message);
    assert.ok(!isNonceError(wrapped), message);
  }
  const low = toChainError(
    { code: "NONCE_EXPIRED", message: "nonce has already been used" },
    "eth_sendRawTransaction",
    "u",
  );
  assert.ok(isNonceTooLow(low) && isNonceError(low) && !isAlreadyKnown(low));
});

Deno.test("isDefiniteRefusal: only a node's outright refusal says a send did not get through", () => {
  for (const code of ["CHAIN_TIMEOUT", "CHAIN_UNREACHABLE", "CHAIN_BAD_RESPONSE", "CHAIN_CLOSED"] as const) {
    assert.equal(isDefiniteRefusal(new ChainError(code, "x")), false, code);
  }
  assert.equal(isDefiniteRefusal(new DOMException("aborted", "AbortError")), false);
  assert.equal(isDefiniteRefusal(new TypeError("socket hang up")), false, "not classified: unclear");
  // geth answers its own HTTP timeout with a JSON-RPC error, and the send may complete after it
  assert.equal(
    isDefiniteRefusal(new ChainError("CHAIN_RPC_ERROR", "eth_sendRawTransaction failed: request timed out")),
    false,
  );
  assert.equal(isDefiniteRefusal(new ChainError("CHAIN_RPC_ERROR", "internal error")), false);
  assert.equal(isDefiniteRefusal(new ChainError("INSUFFICIENT_FUNDS", "no gas")), true);
  for (
    const m of [
      "exceeds block gas limit",
      "intrinsic gas too low",
      "invalid sender",
      "max fee per gas less than block base fee",
    ]
  ) {
    assert.equal(
      isDefiniteRefusal(new ChainError("CHAIN_RPC_ERROR", `eth_sendRawTransaction failed: ${m}`)),
      true,
      m,
    );
    assert.equal(isDefiniteRefusal(new ChainError("CHAIN_RPC_ERROR", m)), true, m);
  }
});
