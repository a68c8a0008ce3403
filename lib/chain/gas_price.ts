/**
 * What the transaction queue (tx_queue.ts) offers for gas: a fifth above the market price for a new
 * tx, a quarter more for a stuck one (a bounded number of times, then only the market), and never
 * more than a ceiling (`MAX_GAS_PRICE_WEI`), so a hostile or broken RPC cannot spend the wallet on
 * fees (docs/security.md, "Chain").
 * @module
 */
import { ChainError } from "../errors.ts";

/** 100 gwei: a hundred times the usual price of a geth-based chain (`MAX_GAS_PRICE_WEI`). */
export const DEFAULT_MAX_GAS_PRICE_WEI = 100n * 10n ** 9n;

const minOf = (a: bigint, b: bigint) => (a < b ? a : b);
const maxOf = (a: bigint, b: bigint) => (a > b ? a : b);

/**
 * The gas price a new tx offers at the `market` price: a fifth above it, at most `cap`. Throws
 * GAS_PRICE_TOO_HIGH when the market itself is above the ceiling (nothing is to be sent).
 */
export function newTxPrice(market: bigint, cap: bigint, label: string): bigint {
  if (market > cap) {
    throw new ChainError(
      "GAS_PRICE_TOO_HIGH",
      `${label} transaction not sent: the RPC's gas price ${market} wei is above MAX_GAS_PRICE_WEI ${cap}`,
      {
        hint: "it is tried again later; if the chain's fees really are this high, raise MAX_GAS_PRICE_WEI, " +
          "else check that PLUMISE_RPC_URL is a node you trust",
        details: { label, gasPriceWei: market.toString(), maxGasPriceWei: cap.toString() },
      },
    );
  }
  return offerAt(market, cap);
}

/** A fifth above the `market` price, at most `cap`. */
const offerAt = (market: bigint, cap: bigint) => minOf(market + market / 5n + 1n, cap);

/**
 * The price a stuck tx offered at `current` is sent again with: while `bump` (fee bumps left),
 * a quarter more or the market's offer when that is higher; after that the market's offer only
 * when it is a tenth above. Never above `cap`, never below `current` (a replacement must offer
 * more; equal means the same tx broadcast again).
 */
export function stuckTxPrice(current: bigint, market: bigint, cap: bigint, bump: boolean): bigint {
  const offer = offerAt(market, cap);
  let price = current;
  if (bump) price = minOf(maxOf(current + current / 4n + 1n, offer), cap);
  else if (offer > current + current / 10n) price = offer;
  return maxOf(price, current);
}
