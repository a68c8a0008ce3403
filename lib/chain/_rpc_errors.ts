/**
 * Turns ethers/JSON-RPC failures into `ChainError`s with stable codes, and answers the
 * questions the chain code asks about them (unreachable? method missing? nonce stale? revert reason?).
 * @module
 */
import { AbiCoder } from "ethers";
import { ChainError, errorMessage, PlumiseError } from "../errors.ts";
import { isAbort } from "../util/abort.ts";

interface EthersLikeError {
  code?: string | number;
  reason?: string | null;
  shortMessage?: string;
  message?: string;
  data?: unknown;
  info?: { error?: { code?: number; message?: string; data?: unknown } };
  error?: { code?: number; message?: string; data?: unknown };
}

/** Decodes `Error(string)` revert data; undefined when it is something else. */
export function decodeRevertReason(data: unknown): string | undefined {
  if (typeof data !== "string" || !data.startsWith("0x08c379a0")) return undefined;
  try {
    return AbiCoder.defaultAbiCoder().decode(["string"], "0x" + data.slice(10))[0] as string;
  } catch {
    return undefined;
  }
}

function rpcErrorOf(err: unknown): { code?: number; message?: string; data?: unknown } | undefined {
  const e = err as EthersLikeError;
  return e?.info?.error ?? e?.error;
}

/** The JSON-RPC answered "method not found" (-32601) or the equivalent message. */
export function isMethodNotFound(err: unknown): boolean {
  if (err instanceof ChainError) return err.code === "CHAIN_METHOD_NOT_FOUND";
  const rpc = rpcErrorOf(err);
  const msg = `${rpc?.message ?? ""} ${(err as EthersLikeError)?.message ?? ""}`;
  return rpc?.code === -32601 || /method not found|does not exist\/is not available|not supported/i.test(msg);
}

/** The reason of a revert, when `err` is one. */
export function revertReason(err: unknown): string | undefined {
  const e = err as EthersLikeError;
  if (e?.code === "CALL_EXCEPTION") {
    return e.reason ?? decodeRevertReason(e.data) ?? decodeRevertReason(rpcErrorOf(err)?.data) ??
      "execution reverted (no reason)";
  }
  const rpc = rpcErrorOf(err);
  if (rpc && /revert/i.test(rpc.message ?? "")) {
    return decodeRevertReason(rpc.data) ?? rpc.message?.replace(/^execution reverted:?\s*/i, "") ??
      "execution reverted";
  }
  return undefined;
}

/** Codes and messages of `err` and its causes (a ChainError wraps the ethers error). */
function errorText(err: unknown): { codes: unknown[]; text: string } {
  const codes: unknown[] = [];
  const parts: string[] = [];
  let cur: unknown = err;
  for (let i = 0; i < 4 && cur && typeof cur === "object"; i++) {
    const e = cur as EthersLikeError & { cause?: unknown };
    codes.push(e.code);
    parts.push(rpcErrorOf(cur)?.message ?? "", e.shortMessage ?? "", e.message ?? "");
    cur = e.cause;
  }
  return { codes, text: parts.join(" ") };
}

/**
 * The node already has this very transaction ("already known" in geth, "transaction already
 * imported" in anvil): it is pending, not refused; its hash is the keccak of the signed bytes.
 */
export function isAlreadyKnown(err: unknown): boolean {
  return /already known|already imported|known transaction|AlreadyKnown|already in (the )?mempool|transaction already exists/i
    .test(errorText(err).text);
}

/** The nonce was used by a mined transaction ("nonce too low"). */
export function isNonceTooLow(err: unknown): boolean {
  const { codes, text } = errorText(err);
  return codes.includes("NONCE_EXPIRED") || /nonce too low|nonce has already been used/i.test(text);
}

/** Another transaction with this nonce waits in the pool at a price this one does not beat by enough. */
export function isUnderpriced(err: unknown): boolean {
  const { codes, text } = errorText(err);
  return codes.includes("REPLACEMENT_UNDERPRICED") ||
    /replacement transaction underpriced|underpriced/i.test(text);
}

/**
 * A stale nonce or a same-nonce replacement: re-read the nonce and send again. Not "already
 * known": that tx is pending, and signing again at the next nonce would do the action twice.
 */
export function isNonceError(err: unknown): boolean {
  if (isAlreadyKnown(err)) return false;
  return isNonceTooLow(err) || isUnderpriced(err) || /nonce too high/i.test(errorText(err).text);
}

/** Maps anything thrown by an RPC call to a ChainError (PlumiseErrors pass through). */
export function toChainError(err: unknown, method: string, rpcUrl: string): PlumiseError {
  if (err instanceof PlumiseError) return err;
  const e = err as EthersLikeError;
  const where = `${method} on ${rpcUrl}`;
  if (isAbort(err) || e?.code === "TIMEOUT") {
    return new ChainError("CHAIN_TIMEOUT", `${where} timed out`, {
      hint: "the RPC did not answer in time; it is retried with backoff",
      cause: err,
    });
  }
  if (isMethodNotFound(err)) {
    return new ChainError("CHAIN_METHOD_NOT_FOUND", `${where}: method not found`, {
      hint: "this RPC is not a Plumise node (plain EVM); the node falls back where it can",
      cause: err,
    });
  }
  const reason = revertReason(err);
  if (reason !== undefined) {
    return new ChainError("CHAIN_REVERT", `${where} reverted: ${reason}`, {
      hint: "the chain refused the call; see the reason",
      cause: err,
      details: { reason },
    });
  }
  const msg = errorMessage(err);
  if (e?.code === "BAD_DATA" || /not valid JSON|invalid json|missing response|bad response/i.test(msg)) {
    return new ChainError("CHAIN_BAD_RESPONSE", `${where} answered something that is not JSON-RPC: ${msg}`, {
      hint: "check PLUMISE_RPC_URL points at a Plumise/Ethereum JSON-RPC endpoint",
      cause: err,
    });
  }
  if (e?.code === "SERVER_ERROR" || /ECONNREFUSED|connect|network|fetch|dns|ENOTFOUND|socket/i.test(msg)) {
    return new ChainError("CHAIN_UNREACHABLE", `${where} failed: ${msg}`, {
      hint: "check PLUMISE_RPC_URL and that the node is running; retried with backoff",
      cause: err,
    });
  }
  const rpc = rpcErrorOf(err);
  if (/insufficient funds/i.test(`${rpc?.message ?? ""} ${msg}`)) {
    return new ChainError("INSUFFICIENT_FUNDS", `${where}: the agent wallet cannot pay for gas`, {
      hint: "send the agent's address (plumise wallet address) a little PLM for gas; the node retries",
      cause: err,
    });
  }
  return new ChainError("CHAIN_RPC_ERROR", `${where} failed: ${rpc?.message ?? msg}`, {
    hint: "the RPC returned an error; see the message",
    cause: err,
  });
}

/**
 * A node's answer that refuses a transaction outright: it did not take it, and will not (no funds,
 * over the block gas limit, too little intrinsic gas, an invalid sender or chain, a fee under the
 * base fee). Only these: an RPC may answer other errors (geth's "request timed out", an internal
 * error) after the transaction got through.
 */
export function isDefiniteRefusal(err: unknown): boolean {
  if (err instanceof ChainError && err.code === "INSUFFICIENT_FUNDS") return true;
  return /insufficient funds|exceeds block gas limit|intrinsic gas too low|gas limit reached|invalid sender|oversized data|exceeds the configured cap|less than block base fee|transaction type not supported|invalid chain ?id/i
    .test(errorText(err).text);
}

/** Failures after which the chain is treated as offline (retry later) rather than broken. */
export function isTransient(err: unknown): boolean {
  return err instanceof ChainError &&
    [
      "CHAIN_TIMEOUT",
      "CHAIN_UNREACHABLE",
      "CHAIN_BAD_RESPONSE",
      "CHAIN_RPC_ERROR",
      "INSUFFICIENT_FUNDS",
      "RECEIPT_TIMEOUT",
      "TX_DISPLACED",
      "GAS_PRICE_TOO_HIGH",
    ].includes(err.code);
}
