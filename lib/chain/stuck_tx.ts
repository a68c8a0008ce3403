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
import { deliveryUnclear, isNonceTooLow, isUnderpriced } from "./_rpc_errors.ts";
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
  let replaced = false;
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
    const price = stuckTxPrice(t.gasPrice, market, cap, t.bumps < c.maxFeeBumps);
    const raw = price === t.gasPrice ? t.raw : await c.sign(t.request, t.nonce, price);
    // looked for from now on: a replacement whose reply is lost may be the version mined (the
    // first version is never forgotten: it may be the one still waiting)
    const previous = t.hashes.at(-1), replacement = keccak256(raw);
    if (raw !== t.raw && !t.hashes.includes(replacement)) {
      t.hashes = [t.hashes[0], ...[...t.hashes.slice(1), replacement].slice(-(MAX_HASHES - 1))];
    }
    const hash = await c.broadcast(raw, { signal }).catch((err) => {
      if (raw !== t.raw && !deliveryUnclear(err)) t.hashes = t.hashes.filter((h) => h !== replacement);
      throw err;
    });
    if (raw !== t.raw) {
      replaced = true;
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
    } else {
      logger.info("broadcast a stuck transaction again", { label, nonce: t.nonce, hash });
    }
  } catch (err) {
    if (isAbort(err) || signal?.aborted) throw err;
    if (isNonceTooLow(err)) return "taken"; // mined: one of ours, or another tx of this wallet
    if (!deliveryUnclear(err) && !isUnderpriced(err) && await unknownToNode(c, t, { signal })) {
      // refused (e.g. exceeds the block gas limit, no funds) and not waiting anywhere: it will
      // never be mined, and waiting for it would hold every later transaction
      logger.warn("a stuck transaction is refused by the node and not in its pool: given up", {
        label,
        nonce: t.nonce,
        error: errorMessage(err),
      });
      t.refusal = err;
      return "refused";
    }
    // Underpriced: another version at this nonce offers more (it may still be mined); else a
    // refusal or an unreachable RPC. Either way the tx keeps being awaited and tried again.
    logger.warn("re-sending a stuck transaction failed; still waiting for it", {
      label,
      nonce: t.nonce,
      error: errorMessage(err),
    });
  }
  t.lastSentAt = Date.now();
  return replaced ? "replaced" : "resent";
}
