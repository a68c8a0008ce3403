/**
 * `fillNonceGaps`: nonces below a stuck transaction that the chain has not mined and no pool
 * transaction holds. A transaction of an earlier process (stopped while it was pending) that later
 * left the pool (evicted, the RPC node restarted) leaves such a gap, and no later transaction of
 * the wallet is ever mined: heartbeats and claims stop for good. The tx queue calls this each time
 * its transaction is stuck (tx_queue.ts).
 * @module
 */
import { errorMessage } from "../errors.ts";
import { isAbort } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import type { ChainProvider } from "./provider.ts";
import type { TxRequest } from "./tx_queue_options.ts";

/** Most nonces filled at once. */
export const MAX_GAP_FILLS = 16;

export interface NonceGapOptions {
  readonly provider: Pick<ChainProvider, "getNonce">;
  readonly address: string;
  /** The stuck transaction's nonce: the nonces below it are looked at. */
  readonly below: number;
  /** The fillers' gas price (the market's). */
  readonly price: bigint;
  readonly sign: (tx: TxRequest, nonce: number, gasPrice: bigint) => Promise<string>;
  /** Broadcasts a signed transaction; returns its hash. */
  readonly broadcast: (raw: string) => Promise<string>;
  readonly logger: Logger;
  readonly stuckLabel: string;
  readonly signal?: AbortSignal;
}

/**
 * Sends a 0-value transfer to the wallet itself, at the market price, at each nonce from the
 * wallet's pending count up to `below` (at most `MAX_GAP_FILLS`); returns the nonces filled. On
 * geth and anvil the pending count stops at a gap, so nonces that pool transactions hold are left
 * alone; a node whose count goes past the gap gets nothing filled. A nonce taken meanwhile is
 * refused ("too low", or underpriced against a transaction waiting there). An RPC that cannot say
 * fills nothing (asked again next time).
 */
export async function fillNonceGaps(o: NonceGapOptions): Promise<number[]> {
  // the pool's count: past the mined nonces and the pool's transactions that can run (a node counts
  // none past a gap), so a nonce a transaction still holds is never filled
  let first: number;
  try {
    first = await o.provider.getNonce(o.address, { signal: o.signal, blockTag: "pending" });
  } catch (err) {
    if (isAbort(err) || o.signal?.aborted) throw err;
    return [];
  }
  const filled: number[] = [];
  const filler: TxRequest = { to: o.address, data: "0x", gasLimit: 21_000n, label: "nonce gap filler" };
  for (let nonce = first; nonce < o.below && nonce < first + MAX_GAP_FILLS; nonce++) {
    try {
      const hash = await o.broadcast(await o.sign(filler, nonce, o.price));
      filled.push(nonce);
      o.logger.warn("a nonce below a stuck transaction was free: filled with a 0-value transfer to itself", {
        nonce,
        hash,
        stuck: o.stuckLabel,
        stuckNonce: o.below,
      });
    } catch (err) {
      if (isAbort(err) || o.signal?.aborted) throw err;
      o.logger.debug("nonce below a stuck transaction not filled", { nonce, error: errorMessage(err) });
    }
  }
  return filled;
}
