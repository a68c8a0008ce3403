/**
 * One transaction queue per wallet: nonces managed locally, one tx in flight at a time, simulated
 * before sending (a revert is reported with its reason, no gas wasted), receipts awaited with a
 * timeout. What a chain does to a tx in flight (docs/security.md, "Chain"):
 *
 * - "already known": the node has this very tx; it is pending (its hash is keccak of the bytes),
 *   never signed again at the next nonce.
 * - an unclear send (lost reply, nonce error): the tx is looked up by hash before anything is
 *   signed again; a lookup that fails too keeps it as sent (tracked, its nonce taken).
 * - a receipt timeout: the tx stays tracked. The next send of the same action (e.g. registration
 *   retried) waits for it instead of sending a second one; another action waits until it is mined.
 * - stuck (no receipt `stuckAfterMs` after its last broadcast): replaced at the same nonce with a
 *   higher fee (gas_price.ts: at most `maxFeeBumps` bumps above the market, then the market price;
 *   never above `maxGasPriceWei`), or broadcast again if dropped; a replacement's hash is looked
 *   for from before its broadcast. Nonces below it the chain has not mined are filled
 *   (nonce_gaps.ts).
 * - low priority (0x20 attestations): run only when no other tx waits, at most `maxLowQueued`
 *   waiting; more are refused at once with `TX_QUEUE_FULL`.
 * @module
 */
import { keccak256 } from "ethers";
import { ChainError, errorMessage } from "../errors.ts";
import { type AbortOptions, isAbort, sleep } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { withDefaults } from "../util/with_defaults.ts";
import { isAlreadyKnown, isDefiniteRefusal, isNonceError } from "./_rpc_errors.ts";
import { DEFAULT_MAX_GAS_PRICE_WEI, newTxPrice } from "./gas_price.ts";
import { type StuckTxContext, type Tracked, unstickTx } from "./stuck_tx.ts";
import type { TxReceipt } from "./provider.ts";
import type { TxQueueOptions, TxRequest, TxResult, TxSendOptions } from "./tx_queue_options.ts";

export type { TxPriority, TxQueueOptions, TxRequest, TxResult, TxSendOptions } from "./tx_queue_options.ts";

type ResolvedTxQueueOptions = Required<Omit<TxQueueOptions, "logger">> & { logger: Logger };

interface Job {
  tx: TxRequest;
  signal?: AbortSignal;
  resolve: (r: TxResult) => void;
  reject: (err: unknown) => void;
  onAbort?: () => void;
}

const actionKey = (tx: TxRequest) => `${tx.to.toLowerCase()}|${tx.data.toLowerCase()}|${tx.value ?? 0n}`;

export class TxQueue {
  readonly #o: ResolvedTxQueueOptions;
  #nonce: number | undefined;
  #tracked: Tracked | undefined;
  readonly #normal: Job[] = [];
  readonly #low: Job[] = [];
  #running = false;
  #sent = 0;
  #replaced = 0;

  constructor(options: TxQueueOptions) {
    // an option passed as undefined (ChainAgent passes its own optional settings through) keeps its default
    this.#o = withDefaults<ResolvedTxQueueOptions>({
      provider: options.provider,
      wallet: options.wallet,
      logger: silentLogger,
      receiptTimeoutMs: 120_000,
      pollMs: 1000,
      simulate: true,
      nonceRetries: 3,
      stuckAfterMs: 45_000,
      maxFeeBumps: 3,
      maxLowQueued: 8,
      maxGasPriceWei: DEFAULT_MAX_GAS_PRICE_WEI,
      onMinedLate: () => {},
    }, options);
  }

  get address(): string {
    return this.#o.wallet.address;
  }

  /** Transactions broadcast so far (replacements not counted). */
  get sent(): number {
    return this.#sent;
  }

  /** Stuck transactions replaced with a fee bump so far. */
  get replaced(): number {
    return this.#replaced;
  }

  /** Sends waiting for their turn, by priority. */
  get waiting(): { normal: number; low: number } {
    return { normal: this.#normal.length, low: this.#low.length };
  }

  /** Queues `tx`; resolves with its successful receipt, rejects with a ChainError. */
  send(tx: TxRequest, options: TxSendOptions = {}): Promise<TxResult> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const list = options.priority === "low" ? this.#low : this.#normal;
    if (list === this.#low && list.length >= this.#o.maxLowQueued) {
      return Promise.reject(
        new ChainError(
          "TX_QUEUE_FULL",
          `${tx.label} transaction dropped: ${list.length} low-priority transactions already wait`,
          {
            hint:
              "the chain takes about one transaction per block; low-priority ones beyond the queue are dropped",
            details: { label: tx.label, waiting: list.length },
          },
        ),
      );
    }
    return new Promise<TxResult>((resolve, reject) => {
      const job: Job = { tx, signal, resolve, reject };
      if (signal) {
        job.onAbort = () => {
          const i = list.indexOf(job);
          if (i >= 0) {
            list.splice(i, 1);
            reject(signal.reason);
          }
        };
        signal.addEventListener("abort", job.onAbort, { once: true });
      }
      list.push(job);
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#running) return;
    const job = this.#normal.shift() ?? this.#low.shift();
    if (!job) return;
    if (job.onAbort) job.signal!.removeEventListener("abort", job.onAbort);
    this.#running = true;
    this.#run(job.tx, { signal: job.signal }).then(job.resolve, job.reject).finally(() => {
      this.#running = false;
      this.#pump();
    });
  }

  async #run(tx: TxRequest, { signal }: AbortOptions = {}): Promise<TxResult> {
    signal?.throwIfAborted();
    const key = actionKey(tx);
    const earlier = this.#tracked;
    if (earlier?.key === key) {
      // The same action again (e.g. registration retried after a receipt timeout): wait for the
      // tx already broadcast instead of sending a second one.
      this.#o.logger.info("waiting for the identical transaction already sent instead of sending it again", {
        label: tx.label,
        nonce: earlier.nonce,
        hash: earlier.hashes.at(-1),
      });
      return await this.#finish(earlier, { signal });
    }
    if (earlier) await this.#settle(earlier, tx.label, { signal });
    if (this.#o.simulate) await this.#simulate(tx, { signal });
    return await this.#finish(await this.#broadcastNew(tx, key, { signal }), { signal });
  }

  async #simulate(tx: TxRequest, { signal }: AbortOptions = {}): Promise<void> {
    try {
      await this.#o.provider.call(
        { to: tx.to, data: tx.data, from: this.address, gas: tx.gasLimit },
        { signal, blockTag: "pending" },
      );
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

  #sign(tx: TxRequest, nonce: number, gasPrice: bigint): Promise<string> {
    return this.#o.wallet.signTransaction({
      type: 0,
      chainId: this.#o.provider.chainId,
      nonce,
      to: tx.to,
      data: tx.data,
      value: tx.value ?? 0n,
      gasLimit: tx.gasLimit,
      gasPrice,
    });
  }

  /** Broadcasts `raw`; an "already known" reply means the node has it. Returns its hash. */
  async #broadcast(raw: string, { signal }: AbortOptions = {}): Promise<string> {
    const hash = keccak256(raw);
    try {
      const answered = await this.#o.provider.sendRaw(raw, { signal });
      if (answered.toLowerCase() !== hash.toLowerCase()) {
        throw new ChainError(
          "CHAIN_BAD_RESPONSE",
          `eth_sendRawTransaction answered ${answered}, not ${hash}`,
          {
            hint: "check PLUMISE_RPC_URL points at a Plumise/Ethereum JSON-RPC endpoint",
          },
        );
      }
    } catch (err) {
      if (!isAlreadyKnown(err)) throw err;
      this.#o.logger.debug("the node already has this transaction: pending", { hash });
    }
    return hash;
  }

  /** Whether the node knows `hash`; "unknown" when it cannot be asked. */
  async #known(hash: string, { signal }: AbortOptions = {}): Promise<boolean | "unknown"> {
    try {
      return await this.#o.provider.hasTransaction(hash, { signal });
    } catch {
      return "unknown";
    }
  }

  #track(tx: TxRequest, key: string, nonce: number, hash: string, raw: string, gasPrice: bigint): Tracked {
    this.#nonce = nonce + 1;
    this.#sent++;
    const tracked: Tracked = {
      key,
      request: tx,
      nonce,
      hashes: [hash],
      raw,
      gasPrice,
      bumps: 0,
      lastSentAt: Date.now(),
    };
    this.#tracked = tracked;
    return tracked;
  }

  async #broadcastNew(tx: TxRequest, key: string, { signal }: AbortOptions = {}): Promise<Tracked> {
    const { provider, logger } = this.#o;
    for (let attempt = 1;; attempt++) {
      if (this.#nonce === undefined) this.#nonce = await provider.getNonce(this.address, { signal });
      const nonce = this.#nonce;
      const gasPrice = newTxPrice(await provider.getGasPrice({ signal }), this.#o.maxGasPriceWei, tx.label);
      const raw = await this.#sign(tx, nonce, gasPrice);
      let hash: string;
      try {
        hash = await this.#broadcast(raw, { signal });
      } catch (err) {
        hash = keccak256(raw);
        // The reply may be lost or misleading while the tx got through: ask by hash before
        // signing anything again (a second signature would be a second action).
        const known = isAbort(err) || signal?.aborted ? "unknown" : await this.#known(hash, { signal });
        if (known === "unknown" && !isDefiniteRefusal(err)) {
          // Neither sent for sure nor not: it is kept as sent, its nonce taken. A retry of this
          // action waits for it (and broadcasts it again when stuck), another action comes after
          // it; never a second signature of it at the next nonce, nor a gap at this one.
          this.#track(tx, key, nonce, hash, raw, gasPrice);
          logger.info("the send's outcome is unknown: the transaction is kept as sent", {
            label: tx.label,
            hash,
            nonce,
            error: errorMessage(err),
          });
          throw err;
        }
        if (known !== true) {
          // not taken, or refused by the node (its JSON-RPC error) and not found right after
          this.#nonce = undefined; // re-read on the next try / next tx
          if (isNonceError(err) && attempt < this.#o.nonceRetries) {
            logger.debug("stale nonce, re-reading it", { label: tx.label, nonce, attempt });
            continue;
          }
          throw err;
        }
        logger.info("the send failed but the node has the transaction: waiting for it", {
          label: tx.label,
          hash,
          nonce,
          error: errorMessage(err),
        });
      }
      logger.debug("transaction sent", { label: tx.label, hash, nonce });
      return this.#track(tx, key, nonce, hash, raw, gasPrice);
    }
  }

  /** Waits for `t`'s receipt and turns it into the send's result (or a ChainError). */
  async #finish(t: Tracked, { signal }: AbortOptions = {}): Promise<TxResult> {
    const { label } = t.request;
    const receipt = await this.#waitMined(t, label, { signal });
    if (!receipt) {
      throw new ChainError(
        "TX_DISPLACED",
        `${label} transaction at nonce ${t.nonce} was displaced: another transaction of this wallet took the nonce`,
        {
          hint: "something else sends with this key; the action is checked again and retried",
          details: { label, nonce: t.nonce },
        },
      );
    }
    const result: TxResult = {
      ...receipt,
      label,
      nonce: t.nonce,
      gasCostWei: receipt.gasUsed * receipt.effectiveGasPrice,
    };
    if (receipt.status !== 1) {
      let reason = "reverted";
      try {
        await this.#o.provider.call(
          { to: t.request.to, data: t.request.data, from: this.address, gas: t.request.gasLimit },
          { signal, blockTag: "0x" + Math.max(0, receipt.blockNumber - 1).toString(16) },
        );
      } catch (err) {
        if (err instanceof ChainError && err.details.reason) reason = String(err.details.reason);
      }
      throw new ChainError("TX_REVERTED", `${label} transaction ${receipt.hash} reverted: ${reason}`, {
        hint: "the chain refused it; it is not retried in a loop",
        details: { hash: receipt.hash, reason, label },
      });
    }
    return result;
  }

  /**
   * Looks once for the receipt of a tracked tx whose send gave up waiting, while nothing else is
   * being sent: when mined it is untracked and `onMinedLate` hears of it. The next send would find
   * it anyway; this lets a caller learn of it without sending (e.g. before a claim check).
   */
  async recheck({ signal }: AbortOptions = {}): Promise<void> {
    const t = this.#tracked;
    if (!t || this.#running) return;
    const receipt = await this.#receiptOf(t, { signal });
    if (receipt && this.#tracked === t && !this.#running) {
      this.#untrack(t, receipt);
      this.#minedLate(t, receipt);
    }
  }

  #minedLate(t: Tracked, receipt: TxReceipt): void {
    try {
      this.#o.onMinedLate(t.request, receipt);
    } catch (err) {
      this.#o.logger.warn("a late receipt's callback failed", { error: errorMessage(err) });
    }
  }

  /** Waits for an earlier tx of another action (its nonce comes first) before `label` is sent. */
  async #settle(t: Tracked, label: string, { signal }: AbortOptions = {}): Promise<void> {
    const receipt = await this.#waitMined(t, label, { signal }).catch((err) => {
      if (t.refusal === undefined) throw err;
      return undefined; // never mined: nothing holds this nonce (logged by #unstick)
    });
    if (receipt) this.#minedLate(t, receipt);
    this.#o.logger.info(
      receipt
        ? `an earlier ${t.request.label} transaction was mined late`
        : `an earlier ${t.request.label} transaction was displaced by another one of this wallet`,
      { nonce: t.nonce, hash: receipt?.hash, status: receipt?.status },
    );
  }

  /**
   * Polls the receipts of every version of `t` until one is mined (returns it) or its nonce was
   * taken by a tx that is not one of them (returns undefined); re-sends it when stuck. Throws
   * RECEIPT_TIMEOUT after `receiptTimeoutMs` (for the send `label`), leaving `t` tracked.
   */
  async #waitMined(t: Tracked, label: string, { signal }: AbortOptions = {}): Promise<TxReceipt | undefined> {
    const deadline = Date.now() + this.#o.receiptTimeoutMs;
    for (;;) {
      const receipt = await this.#receiptOf(t, { signal });
      if (receipt) return this.#untrack(t, receipt);
      if (Date.now() - t.lastSentAt >= this.#o.stuckAfterMs) {
        const outcome = await unstickTx(this.#stuckContext(), t, { signal });
        if (outcome === "replaced") this.#replaced++;
        if (outcome === "refused") {
          this.#nonce = undefined;
          this.#untrack(t, undefined);
          throw t.refusal;
        }
        if (outcome === "taken") {
          const late = await this.#receiptOf(t, { signal });
          this.#nonce = undefined;
          return this.#untrack(t, late ?? undefined);
        }
      }
      if (Date.now() >= deadline) {
        const hash = t.hashes.at(-1);
        const what = label === t.request.label
          ? `${label} transaction ${hash}`
          : `the earlier ${t.request.label} transaction ${hash} (before ${label})`;
        throw new ChainError(
          "RECEIPT_TIMEOUT",
          `${what} not mined after ${this.#o.receiptTimeoutMs} ms (nonce ${t.nonce})`,
          {
            hint:
              "the chain may be congested or stalled; the transaction stays tracked (and is re-sent with " +
              "a fee bump when stuck), so retrying sends nothing twice",
            details: { hash, nonce: t.nonce, label },
          },
        );
      }
      await sleep(this.#o.pollMs, { signal });
    }
  }

  #stuckContext(): StuckTxContext {
    return {
      ...this.#o,
      address: this.address,
      sign: (tx, nonce, price) => this.#sign(tx, nonce, price),
      broadcast: (raw, o) => this.#broadcast(raw, o),
      known: (hash, o) => this.#known(hash, o),
    };
  }

  #untrack(t: Tracked, receipt: TxReceipt | undefined): TxReceipt | undefined {
    if (this.#tracked === t) this.#tracked = undefined;
    return receipt;
  }

  async #receiptOf(t: Tracked, { signal }: AbortOptions = {}): Promise<TxReceipt | null> {
    for (const hash of [...t.hashes].reverse()) {
      const receipt = await this.#o.provider.getReceipt(hash, { signal });
      if (receipt) return receipt;
    }
    return null;
  }
}
