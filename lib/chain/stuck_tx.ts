/**
 * A transaction of the queue (tx_queue.ts) that has had no receipt for `stuckAfterMs`: nonces below
 * it the chain has not mined are filled (nonce_gaps.ts), then it is replaced at its nonce with a fee
 * bump (or the market price), or broadcast again (it may have been dropped). Its versions' hashes
 * are kept so that whichever is mined is found.
 * @module
 */
import { keccak256 } from "ethers";
import { errorMessage } from "../errors.ts";
import { type AbortOptions, isAbort } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import { isDefiniteRefusal, isNonceTooLow } from "./_rpc_errors.ts";
import { stuckTxPrice } from "./gas_price.ts";
import { fillNonceGaps } from "./nonce_gaps.ts";
import type { ChainProvider } from "./provider.ts";
import type { TxRequest } from "./tx_queue_options.ts";

/** A broadcast tx that has no receipt yet. */
export interface Tracked {
  /** The action: to, data and value (two sends of one action are one tx). */
  readonly key: string;
  readonly request: TxRequest;
  readonly nonce: number;
  /** Every signed version broadcast (replacements), newest last, at most MAX_HASHES. */
  hashes: string[];
  raw: string;
  gasPrice: bigint;
  bumps: number;
  lastSentAt: number;
  /** The node refused it and knows none of its versions: it will never be mined (`unstickTx`). */
  refusal?: unknown;
}

/** Most versions of a transaction looked for (the first and the newest). */
export const MAX_HASHES = 8;

/** What `unstickTx` uses of its queue. */
export interface StuckTxContext {
  readonly provider: ChainProvider;
  readonly logger: Logger;
  readonly address: string;
  readonly maxGasPriceWei: bigint;
  readonly maxFeeBumps: number;
  readonly sign: (tx: TxRequest, nonce: number, gasPrice: bigint) => Promise<string>;
  /** Broadcasts a signed transaction; returns its hash ("already known" counts as sent). */
  readonly broadcast: (raw: string, options?: AbortOptions) => Promise<string>;
  /** Whether the node knows a hash; "unknown" when it cannot be asked. */
  readonly known: (hash: string, options?: AbortOptions) => Promise<boolean | "unknown">;
}

/** Whether the node knows none of `t`'s versions (false where it cannot be asked). */
async function unknownToNode(c: StuckTxContext, t: Tracked, { signal }: AbortOptions = {}): Promise<boolean> {
  for (const hash of t.hashes) if ((await c.known(hash, { signal })) !== false) return false;
  return true;
}

/**
 * `t` has had no receipt for `stuckAfterMs`: replaces it at its nonce with a fee bump (or the
 * market price), or broadcasts it again (it may have been dropped). "taken": the nonce is used.
 * "refused": the node refused it and knows none of its versions (`t.refusal` says why).
 */
export async function unstickTx(
  c: StuckTxContext,
  t: Tracked,
  { signal }: AbortOptions = {},
): Promise<"resent" | "replaced" | "taken" | "refused"> {
  const { provider, logger } = c;
  const label = t.request.label;
  const stillWaiting = (err: unknown) => {
    // underpriced: another version at this nonce offers more (it may still be mined); else a lost
    // reply or an unreachable RPC: the tx keeps being awaited and tried again
    logger.warn("re-sending a stuck transaction failed; still waiting for it", {
      label,
      nonce: t.nonce,
      error: errorMessage(err),
    });
  };
  let raw: string, price: bigint;
  try {
    const market = await provider.getGasPrice({ signal });
    const cap = c.maxGasPriceWei;
    if (market > cap) {
      logger.warn("the RPC's gas price is above MAX_GAS_PRICE_WEI: a stuck transaction keeps its fee", {
        label,
        nonce: t.nonce,
        gasPriceWei: market,
        maxGasPriceWei: cap,
      });
    }
    await fillNonceGaps({
      provider: c.provider,
      address: c.address,
      below: t.nonce,
      price: market > cap ? cap : market,
      sign: c.sign,
      broadcast: (raw) => c.broadcast(raw, { signal }),
      logger,
      stuckLabel: label,
      signal,
    });
    price = stuckTxPrice(t.gasPrice, market, cap, t.bumps < c.maxFeeBumps);
    raw = price === t.gasPrice ? t.raw : await c.sign(t.request, t.nonce, price);
  } catch (err) {
    // nothing was broadcast: whatever failed says nothing of the transaction
    if (isAbort(err) || signal?.aborted) throw err;
    stillWaiting(err);
    t.lastSentAt = Date.now();
    return "resent";
  }
  // looked for from now on: a replacement whose reply is lost may be the version mined
  const before = t.hashes, previous = t.hashes.at(-1);
  if (raw !== t.raw) t.hashes = withVersion(t, keccak256(raw));
  try {
    const hash = await c.broadcast(raw, { signal });
    if (raw !== t.raw) {
      t.raw = raw;
      if (t.bumps < c.maxFeeBumps) t.bumps++;
      logger.info("replaced a stuck transaction with a fee bump", {
        label,
        nonce: t.nonce,
        hash,
        previous,
        gasPriceWei: price,
        previousGasPriceWei: t.gasPrice,
        bumps: t.bumps,
      });
      t.gasPrice = price;
      t.lastSentAt = Date.now();
      return "replaced";
    }
    logger.info("broadcast a stuck transaction again", { label, nonce: t.nonce, hash });
  } catch (err) {
    if (isAbort(err) || signal?.aborted) throw err;
    if (isNonceTooLow(err)) return "taken"; // mined: one of ours, or another tx of this wallet
    if (isDefiniteRefusal(err)) {
      t.hashes = before; // this version was not taken: the ones before are what may be mined
      if (await unknownToNode(c, t, { signal })) {
        // refused (no funds, over the block gas limit) and waiting nowhere: it will never be
        // mined, and waiting for it would hold every later transaction
        logger.warn("a stuck transaction is refused by the node and not in its pool: given up", {
          label,
          nonce: t.nonce,
          error: errorMessage(err),
        });
        t.refusal = err;
        return "refused";
      }
    }
    stillWaiting(err);
  }
  t.lastSentAt = Date.now();
  return "resent";
}

/**
 * `t`'s hashes with `hash` added: the first version and the one last broadcast are always kept
 * (either may be the one waiting), the oldest of the others make room.
 */
function withVersion(t: Tracked, hash: string): string[] {
  if (t.hashes.includes(hash)) return t.hashes;
  const keep = [...new Set([t.hashes[0], keccak256(t.raw)])];
  const others = t.hashes.filter((h) => !keep.includes(h));
  const room = Math.max(0, MAX_HASHES - keep.length - 1);
  return [...keep, ...others.slice(Math.max(0, others.length - room)), hash];
}
