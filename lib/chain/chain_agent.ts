/**
 * The composed chain agent that node/ starts: preflight → idempotent registration →
 * heartbeat and auto-claim loops (+ optional 0x20 verification). An unreachable RPC means
 * offline mode: start() returns, the agent retries the chain with backoff and never exits for it.
 * A wrong chain id is a ConfigError thrown from start().
 * @module
 */
import type { Wallet } from "ethers";
import { ChainError, ConfigError, errorMessage, PlumiseError } from "../errors.ts";
import { type AbortOptions, isAbort, sleep } from "../util/abort.ts";
import { Backoff, type BackoffOptions } from "../util/backoff.ts";
import { withDefaults } from "../util/with_defaults.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { isTransient } from "./_rpc_errors.ts";
import { PeriodicTask } from "./_periodic_task.ts";
import { AgentRegistryReader } from "./agent_registry.ts";
import { ensureRegistered } from "./agent_registration.ts";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, HeartbeatLoop } from "./heartbeat.ts";
import { preflight } from "./preflight.ts";
import { ChainProvider } from "./provider.ts";
import { autoClaimIntervalMs, claimIfDue, type ClaimOutcome, RewardPool } from "./rewards.ts";
import { TxQueue } from "./tx_queue.ts";
import type { ChainAgentHandle, ChainAgentState, ChainAgentStatus, InferenceProof, Signer } from "./types.ts";
import { encodeVerifyInference, VERIFY_GAS, VERIFY_INFERENCE_ADDRESS } from "./verify_inference.ts";
import { loadWallet, type WalletSource } from "./wallet.ts";

export interface ChainAgentOptions {
  wallet: Wallet;
  rpcUrl: string;
  chainId: number;
  /** Model id (for the agent name and modelHash). */
  model: string;
  rewardPool?: string;
  agentRegistry?: string;
  claimThresholdWei: bigint;
  /** Seconds; the auto-claim period is max(5 × reportInterval, 300) s unless claimIntervalMs is given. */
  reportInterval: number;
  heartbeatIntervalMs?: number;
  claimIntervalMs?: number;
  verifyOnChain?: boolean;
  capabilities?: readonly string[];
  logger?: Logger;
  /** Backoff of the offline-mode retries (default 2 s doubling up to 5 min). */
  retryBackoff?: BackoffOptions;
  rpcTimeoutMs?: number;
  receiptTimeoutMs?: number;
  receiptPollMs?: number;
  /** A tx without a receipt this long is replaced with a fee bump (TxQueue default otherwise). */
  txStuckAfterMs?: number;
  /** The most gas price a tx may offer, in wei (TxQueue's `maxGasPriceWei`; its default otherwise). */
  maxGasPriceWei?: bigint;
  /** Called after each auto-claim check (for logs/tests). */
  onClaimCheck?: (outcome: ClaimOutcome) => void;
  /** Called for each 0x20 attestation dropped because too many wait (e.g. to count it in /metrics). */
  onVerifyDropped?: () => void;
}

/** At most one "verifyInference dropped" log line per this period (a flood is one line). */
const DROP_LOG_PERIOD_MS = 60_000;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class ChainAgent implements ChainAgentHandle {
  readonly provider: ChainProvider;
  readonly queue: TxQueue;
  readonly pool: RewardPool;
  readonly registry: AgentRegistryReader | undefined;
  readonly #o: ChainAgentOptions;
  readonly #logger: Logger;
  readonly #controller = new AbortController();
  #status: Mutable<ChainAgentStatus>;
  #heartbeat: HeartbeatLoop | undefined;
  #claim: PeriodicTask | undefined;
  #background: Promise<void> | undefined;
  #started = false;
  #stopped = false;
  #dropsLoggedAt = -Infinity;
  #dropsSinceLog = 0;

  constructor(options: ChainAgentOptions) {
    this.#o = options;
    this.#logger = (options.logger ?? silentLogger).child({ part: "chain" });
    this.provider = new ChainProvider({
      rpcUrl: options.rpcUrl,
      chainId: options.chainId,
      timeoutMs: options.rpcTimeoutMs,
    });
    this.queue = new TxQueue({
      provider: this.provider,
      wallet: options.wallet,
      logger: this.#logger,
      receiptTimeoutMs: options.receiptTimeoutMs,
      pollMs: options.receiptPollMs,
      stuckAfterMs: options.txStuckAfterMs,
      maxGasPriceWei: options.maxGasPriceWei,
      // a claim whose receipt came after its send gave up still shows as the last claim
      onMinedLate: (request, receipt) => {
        if (request.label !== "claim" || receipt.status !== 1) return;
        const amount = this.pool.claimedAmount(receipt.logs, this.queue.address);
        this.#status.lastClaim = {
          amountWei: amount === undefined ? "unknown" : amount.toString(),
          txHash: receipt.hash,
          at: Date.now(),
        };
        this.#logger.info("reward claimed (its receipt came late)", { amountWei: amount, tx: receipt.hash });
      },
    });
    this.pool = new RewardPool(this.provider, options.rewardPool);
    this.registry = options.agentRegistry
      ? new AgentRegistryReader(this.provider, options.agentRegistry)
      : undefined;
    this.#status = {
      state: "idle",
      address: options.wallet.address,
      chainId: options.chainId,
      heartbeatFailures: 0,
      verifyDropped: 0,
    };
  }

  /** The wallet as the reporter's Signer. */
  get signer(): Signer {
    return this.#o.wallet;
  }

  status(): ChainAgentStatus {
    return { ...this.#status, heartbeatFailures: this.#heartbeat?.failures ?? 0 };
  }

  #setState(state: ChainAgentState): void {
    this.#status.state = state;
  }

  /**
   * Preflight + registration, then the loops. Returns once online, or at once in offline mode
   * (the chain is retried in the background). Throws ConfigError on a wrong chain id, and the
   * abort's reason when `options.signal` aborts first (a node stopped while it registers: a
   * registration tx already sent is found by the next start, which checks before it sends).
   */
  async start(options: AbortOptions = {}): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#setState("starting");
    const own = this.#controller.signal;
    try {
      await this.#connect({ signal: options.signal ? AbortSignal.any([own, options.signal]) : own });
      // #connect returns early, without the loops, when the signal aborts after the registration
      if (options.signal?.aborted && this.#status.state !== "online") throw options.signal.reason;
    } catch (err) {
      if (err instanceof ConfigError) {
        this.#setState("stopped");
        throw err;
      }
      if (options.signal?.aborted && !own.aborted) {
        this.#setState("stopped");
        throw options.signal.reason ?? err;
      }
      if (!(isTransient(err) || isAbort(err)) || this.#stopped) throw err;
      this.#status.lastError = errorMessage(err);
      this.#setState("offline");
      if (noGas(err)) {
        this.#logger.warn(
          "the agent wallet cannot pay for gas: offline mode, the node keeps serving and retries",
          {
            address: this.queue.address,
            hint: (err as PlumiseError).hint,
          },
        );
      } else {
        this.#logger.warn("chain unreachable: offline mode, the node keeps serving and retries the chain", {
          rpcUrl: this.provider.displayUrl,
          error: errorMessage(err),
        });
      }
      this.#background = this.#retryConnect({ signal: this.#controller.signal });
    }
  }

  async #retryConnect({ signal }: { signal: AbortSignal }): Promise<void> {
    const backoff = new Backoff(
      withDefaults<BackoffOptions>({ initialMs: 2000, maxMs: 300_000 }, this.#o.retryBackoff),
    );
    while (!signal.aborted) {
      const delay = backoff.next();
      try {
        await sleep(delay, { signal });
        await this.#connect({ signal });
        this.#logger.info("chain reachable again: online", { rpcUrl: this.provider.displayUrl });
        return;
      } catch (err) {
        if (signal.aborted) return;
        this.#status.lastError = errorMessage(err);
        if (err instanceof ConfigError) {
          this.#logger.error("chain check failed; retrying", { error: errorMessage(err), hint: err.hint });
        } else if (noGas(err)) {
          this.#logger.warn("the agent wallet still cannot pay for gas", {
            address: this.queue.address,
            attempt: backoff.attempt,
          });
        } else {
          this.#logger.warn("chain still unreachable", {
            error: errorMessage(err),
            attempt: backoff.attempt,
          });
        }
      }
    }
  }

  async #connect({ signal }: { signal: AbortSignal }): Promise<void> {
    const pre = await preflight({
      provider: this.provider,
      address: this.queue.address,
      logger: this.#logger,
      signal,
    });
    this.#status.balanceWei = pre.balanceWei.toString();
    try {
      const r = await ensureRegistered({
        provider: this.provider,
        queue: this.queue,
        modelId: this.#o.model,
        capabilities: this.#o.capabilities,
        registry: this.registry,
        logger: this.#logger,
        signal,
      });
      this.#status.registered = true;
      this.#status.registrationSource = r.source;
      this.#status.registrationTx = r.txHash;
      this.#status.agentMethods = r.agentMethods;
      this.#status.registrationError = undefined;
    } catch (err) {
      if (isTransient(err) || isAbort(err)) throw err;
      // A revert (or refusal) is reported with its reason and not retried in a loop.
      this.#status.registered = false;
      this.#status.registrationError = errorMessage(err);
      this.#logger.error("agent registration failed; not retrying", {
        error: errorMessage(err),
        hint: err instanceof ChainError ? err.hint : undefined,
      });
    }
    if (signal.aborted) return;
    this.#startLoops();
    this.#setState("online");
  }

  #startLoops(): void {
    this.#heartbeat = new HeartbeatLoop({
      queue: this.queue,
      intervalMs: this.#o.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      logger: this.#logger,
      onHeartbeat: (r) => {
        this.#status.lastHeartbeatAt = Date.now();
        this.#status.lastHeartbeatTx = r.hash;
      },
    });
    this.#heartbeat.start();
    this.#claim = new PeriodicTask({
      name: "auto-claim",
      intervalMs: this.#o.claimIntervalMs ?? autoClaimIntervalMs(this.#o.reportInterval),
      logger: this.#logger,
      run: async ({ signal }) => {
        // a claim sent earlier whose receipt came after its send gave up (onMinedLate records it)
        await this.queue.recheck({ signal }).catch((err) => {
          if (!signal.aborted) {
            this.#logger.debug("recheck of a tracked tx failed", { error: errorMessage(err) });
          }
        });
        const outcome = await claimIfDue({
          pool: this.pool,
          queue: this.queue,
          thresholdWei: this.#o.claimThresholdWei,
          logger: this.#logger,
          signal,
        });
        if (outcome.claimed) {
          this.#status.lastClaim = {
            amountWei: outcome.amountWei.toString(),
            txHash: outcome.txHash,
            at: Date.now(),
          };
        } else {
          this.#logger.debug("no claim", { reason: outcome.reason });
        }
        this.#o.onClaimCheck?.(outcome);
      },
    });
    this.#claim.start();
  }

  /**
   * Sends 0x20 when VERIFY_ON_CHAIN is on and the agent is online; failures are logged, never
   * thrown. Attestations are low-priority: heartbeats, claims and registration go first, and one
   * beyond the queue's bound is dropped (counted in `verifyDropped`, logged at most once a minute).
   */
  async verifyInference(proof: InferenceProof): Promise<void> {
    if (!this.#o.verifyOnChain || this.#status.state !== "online") return;
    try {
      const data = encodeVerifyInference(proof, this.queue.address);
      const r = await this.queue.send(
        { to: VERIFY_INFERENCE_ADDRESS, data, gasLimit: VERIFY_GAS, label: "verifyInference" },
        { signal: this.#controller.signal, priority: "low" },
      );
      this.#logger.debug("inference verified on chain", { tx: r.hash, tokens: proof.tokenCount });
    } catch (err) {
      if (err instanceof ChainError && err.code === "TX_QUEUE_FULL") this.#verifyDropped();
      else if (!this.#stopped) this.#logger.warn("verifyInference failed", { error: errorMessage(err) });
    }
  }

  #verifyDropped(): void {
    this.#status.verifyDropped++;
    this.#dropsSinceLog++;
    try {
      this.#o.onVerifyDropped?.();
    } catch {
      // a counter callback must not break the caller
    }
    const now = Date.now();
    if (now - this.#dropsLoggedAt < DROP_LOG_PERIOD_MS) return;
    this.#logger.warn("verifyInference dropped: too many attestations wait for the chain", {
      dropped: this.#dropsSinceLog,
      droppedTotal: this.#status.verifyDropped,
      waiting: this.queue.waiting.low,
      hint: "heartbeats and claims go first; at most one such line a minute",
    });
    this.#dropsLoggedAt = now;
    this.#dropsSinceLog = 0;
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#controller.abort();
    await this.#background;
    await this.#heartbeat?.stop();
    await this.#claim?.stop();
    this.provider.destroy();
    this.#setState("stopped");
  }
}

/** Builds a ChainAgent from config-shaped options, loading the wallet (key or keystore). */
export async function createChainAgent(
  options: Omit<ChainAgentOptions, "wallet"> & WalletSource,
): Promise<ChainAgent> {
  const wallet = await loadWallet(options);
  return new ChainAgent({ ...options, wallet });
}

/** Whether `err` is the agent wallet lacking PLM for gas (the chain itself answered). */
function noGas(err: unknown): boolean {
  return err instanceof PlumiseError && err.code === "INSUFFICIENT_FUNDS";
}
