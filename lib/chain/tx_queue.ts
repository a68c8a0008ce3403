/**
 * One transaction queue per wallet: nonces managed locally, one tx in flight at a time,
 * simulated before sending (a revert is reported with its reason, no gas wasted), a stale nonce
 * resolved by re-reading it, receipts awaited with a timeout.
 * @module
 */
import type { Wallet } from "ethers";
import { ChainError } from "../errors.ts";
import { sleep } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { isNonceError } from "./_rpc_errors.ts";
import type { ChainProvider, TxReceipt } from "./provider.ts";

export interface TxRequest {
  to: string;
  data: string;
  gasLimit: bigint;
  /** For logs and errors, e.g. "heartbeat". */
  label: string;
  value?: bigint;
}

export interface TxResult extends TxReceipt {
  readonly label: string;
  readonly nonce: number;
  /** gasUsed × effectiveGasPrice, in wei. */
  readonly gasCostWei: bigint;
}

export interface TxQueueOptions {
  provider: ChainProvider;
  wallet: Wallet;
  logger?: Logger;
  /** How long to wait for a receipt (default 120 s). */
  receiptTimeoutMs?: number;
  /** Receipt polling period (default 1000 ms). */
  pollMs?: number;
  /** Simulate with eth_call before sending (default true). */
  simulate?: boolean;
  /** Tries on a stale nonce (default 3). */
  nonceRetries?: number;
}

export class TxQueue {
  readonly #o: Required<Omit<TxQueueOptions, "logger">> & { logger: Logger };
  #nonce: number | undefined;
  #tail: Promise<unknown> = Promise.resolve();
  #sent = 0;

  constructor(options: TxQueueOptions) {
    this.#o = {
      logger: silentLogger,
      receiptTimeoutMs: 120_000,
      pollMs: 1000,
      simulate: true,
      nonceRetries: 3,
      ...options,
    };
  }

  get address(): string {
    return this.#o.wallet.address;
  }

  /** Transactions broadcast so far. */
  get sent(): number {
    return this.#sent;
  }

  /** Queues `tx`; resolves with its successful receipt, rejects with a ChainError. */
  send(tx: TxRequest, signal?: AbortSignal): Promise<TxResult> {
    const run = this.#tail.then(() => this.#sendNow(tx, signal));
    this.#tail = run.catch(() => {});
    return run;
  }

  async #sendNow(tx: TxRequest, signal?: AbortSignal): Promise<TxResult> {
    signal?.throwIfAborted();
    const { provider, wallet, logger } = this.#o;
    if (this.#o.simulate) {
      try {
        await provider.call({ to: tx.to, data: tx.data, from: wallet.address, gas: tx.gasLimit }, {
          signal,
          blockTag: "pending",
        });
      } catch (err) {
        if (err instanceof ChainError && err.code === "CHAIN_REVERT") {
          const reason = String(err.details.reason ?? err.message);
          throw new ChainError("TX_WOULD_REVERT", `${tx.label} transaction would revert: ${reason}`, {
            hint: "not sent (no gas spent); see the reason",
            cause: err,
            details: { reason, label: tx.label },
          });
        }
        throw err;
      }
    }
    let hash: string | undefined;
    let nonce = 0;
    for (let attempt = 1; hash === undefined; attempt++) {
      if (this.#nonce === undefined) this.#nonce = await provider.getNonce(wallet.address, { signal });
      nonce = this.#nonce;
      const gasPrice = await provider.getGasPrice({ signal });
      const raw = await wallet.signTransaction({
        type: 0,
        chainId: provider.chainId,
        nonce,
        to: tx.to,
        data: tx.data,
        value: tx.value ?? 0n,
        gasLimit: tx.gasLimit,
        gasPrice: gasPrice + gasPrice / 5n + 1n,
      });
      try {
        hash = await provider.sendRaw(raw, { signal });
      } catch (err) {
        this.#nonce = undefined; // re-read on the next try / next tx
        if (isNonceError(err) && attempt < this.#o.nonceRetries) {
          logger.debug("stale nonce, re-reading it", { label: tx.label, nonce, attempt });
          continue;
        }
        throw err;
      }
    }
    this.#nonce = nonce + 1;
    this.#sent++;
    logger.debug("transaction sent", { label: tx.label, hash, nonce });
    const receipt = await this.#waitReceipt(hash, tx.label, signal);
    const result: TxResult = {
      ...receipt,
      label: tx.label,
      nonce,
      gasCostWei: receipt.gasUsed * receipt.effectiveGasPrice,
    };
    if (receipt.status !== 1) {
      let reason = "reverted";
      try {
        await provider.call({ to: tx.to, data: tx.data, from: wallet.address, gas: tx.gasLimit }, {
          signal,
          blockTag: "0x" + Math.max(0, receipt.blockNumber - 1).toString(16),
        });
      } catch (err) {
        if (err instanceof ChainError && err.details.reason) reason = String(err.details.reason);
      }
      throw new ChainError("TX_REVERTED", `${tx.label} transaction ${hash} reverted: ${reason}`, {
        hint: "the chain refused it; it is not retried in a loop",
        details: { hash, reason, label: tx.label },
      });
    }
    return result;
  }

  async #waitReceipt(hash: string, label: string, signal?: AbortSignal): Promise<TxReceipt> {
    const deadline = Date.now() + this.#o.receiptTimeoutMs;
    for (;;) {
      const receipt = await this.#o.provider.getReceipt(hash, { signal });
      if (receipt) return receipt;
      if (Date.now() >= deadline) {
        this.#nonce = undefined;
        throw new ChainError(
          "RECEIPT_TIMEOUT",
          `${label} transaction ${hash} not mined after ${this.#o.receiptTimeoutMs} ms`,
          {
            hint: "the chain may be congested or stalled; the nonce is re-read before the next transaction",
            details: { hash },
          },
        );
      }
      await sleep(this.#o.pollMs, signal);
    }
  }
}
