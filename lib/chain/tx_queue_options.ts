/**
 * What `TxQueue` (tx_queue.ts) takes and gives: a transaction request, its result, and the queue's
 * settings.
 * @module
 */
import type { Wallet } from "ethers";
import type { Logger } from "../util/logger.ts";
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

export type TxPriority = "normal" | "low";

export interface TxSendOptions {
  signal?: AbortSignal;
  /** `low`: runs only when no normal tx waits; refused with `TX_QUEUE_FULL` when the low queue is full. */
  priority?: TxPriority;
}

export interface TxQueueOptions {
  provider: ChainProvider;
  wallet: Wallet;
  logger?: Logger;
  /** How long one send waits for its receipt (default 120 s); the tx stays tracked after that. */
  receiptTimeoutMs?: number;
  /** Receipt polling period (default 1000 ms). */
  pollMs?: number;
  /** Simulate with eth_call before sending (default true). */
  simulate?: boolean;
  /** Tries on a stale nonce (default 3). */
  nonceRetries?: number;
  /** A tx without a receipt this long after its last broadcast is stuck (default 45 s = 15 blocks). */
  stuckAfterMs?: number;
  /** Fee bumps above the market price per tx (default 3); beyond them it only follows the market. */
  maxFeeBumps?: number;
  /** Low-priority txs that may wait (default 8); one more is refused at once. */
  maxLowQueued?: number;
  /**
   * The most gas price a tx may offer, in wei (default 100 gwei, gas_price.ts): a price the RPC
   * reports above it is refused with `GAS_PRICE_TOO_HIGH` (nothing sent), and offers and fee bumps
   * stop at it.
   */
  maxGasPriceWei?: bigint;
  /**
   * Called with a tx whose send gave up waiting (RECEIPT_TIMEOUT) when it is found mined later
   * (before the next tx is sent): e.g. a claim that landed, for the status to show it.
   */
  onMinedLate?: (request: TxRequest, receipt: TxReceipt) => void;
}
