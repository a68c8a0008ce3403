/**
 * RewardPool (default 0x…1000) with the safe ABI subset, and the claim decision:
 * claim when `pending ≥ threshold` **and** `pending > 0`.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { getAddress, Interface, isAddress } from "ethers";
import abi from "../../contracts/abi/RewardPool.json" with { type: "json" };
import { ChainError, ConfigError } from "../errors.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import type { ChainProvider } from "./provider.ts";
import type { TxQueue } from "./tx_queue.ts";

export const DEFAULT_REWARD_POOL = "0x0000000000000000000000000000000000001000";
export const CLAIM_GAS = 200_000n;
const iface = new Interface(abi);

/** `max(5 × reportInterval, 300)` seconds, in ms. */
export function autoClaimIntervalMs(reportIntervalSeconds: number): number {
  return Math.max(5 * reportIntervalSeconds, 300) * 1000;
}

export class RewardPool {
  readonly address: string;
  readonly #provider: ChainProvider;

  constructor(provider: ChainProvider, address: string = DEFAULT_REWARD_POOL) {
    if (!isAddress(address)) {
      throw new ConfigError(
        "REWARD_POOL_INVALID",
        `REWARD_POOL_ADDRESS ${JSON.stringify(address)} is not an address`,
        {
          hint: `set it to a 0x-prefixed 20-byte address (default ${DEFAULT_REWARD_POOL})`,
        },
      );
    }
    this.address = getAddress(address);
    this.#provider = provider;
  }

  async #read(fn: string, args: unknown[], { signal }: AbortOptions = {}): Promise<bigint | boolean> {
    const out = await this.#provider.call({ to: this.address, data: iface.encodeFunctionData(fn, args) }, {
      signal,
    });
    try {
      return iface.decodeFunctionResult(fn, out)[0];
    } catch (err) {
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `RewardPool.${fn} at ${this.address} returned undecodable data (${out.slice(0, 42)})`,
        {
          hint: "check REWARD_POOL_ADDRESS points at the RewardPool contract",
          cause: err,
        },
      );
    }
  }

  async pendingReward(agent: string, { signal }: AbortOptions = {}): Promise<bigint> {
    return BigInt(await this.#read("getPendingReward", [agent], { signal }));
  }

  async currentEpoch({ signal }: AbortOptions = {}): Promise<bigint> {
    return BigInt(await this.#read("getCurrentEpoch", [], { signal }));
  }

  async epochDistributed(epoch: bigint, { signal }: AbortOptions = {}): Promise<boolean> {
    return Boolean(await this.#read("epochDistributed", [epoch], { signal }));
  }

  /** Calldata of `claimReward()`. */
  claimData(): string {
    return iface.encodeFunctionData("claimReward", []);
  }

  /** The amount of the `RewardClaimed` event for `agent` in `logs`, if any. */
  claimedAmount(
    logs: ReadonlyArray<{ address: string; topics: string[]; data: string }>,
    agent: string,
  ): bigint | undefined {
    for (const log of logs) {
      if (log.address.toLowerCase() !== this.address.toLowerCase()) continue;
      try {
        const parsed = iface.parseLog(log);
        if (
          parsed?.name === "RewardClaimed" && String(parsed.args[0]).toLowerCase() === agent.toLowerCase()
        ) {
          return BigInt(parsed.args[1]);
        }
      } catch {
        // another event
      }
    }
    return undefined;
  }
}

export type ClaimOutcome =
  | {
    readonly claimed: true;
    readonly amountWei: bigint;
    readonly txHash: string;
    readonly gasCostWei: bigint;
  }
  | { readonly claimed: false; readonly reason: string; readonly pendingWei: bigint };

/** Claims when `pending ≥ thresholdWei` and `pending > 0`; otherwise says why not. */
export async function claimIfDue(options: {
  pool: RewardPool;
  queue: TxQueue;
  thresholdWei: bigint;
  logger?: Logger;
  signal?: AbortSignal;
}): Promise<ClaimOutcome> {
  const logger = options.logger ?? silentLogger;
  const address = options.queue.address;
  const pending = await options.pool.pendingReward(address, { signal: options.signal });
  if (pending === 0n) return { claimed: false, reason: "no pending reward", pendingWei: 0n };
  if (pending < options.thresholdWei) {
    return {
      claimed: false,
      reason: `pending ${pending} wei is below the threshold ${options.thresholdWei} wei`,
      pendingWei: pending,
    };
  }
  const r = await options.queue.send(
    { to: options.pool.address, data: options.pool.claimData(), gasLimit: CLAIM_GAS, label: "claim" },
    { signal: options.signal },
  );
  const amount = options.pool.claimedAmount(r.logs, address) ?? pending;
  logger.info("reward claimed", { amountWei: amount, tx: r.hash });
  return { claimed: true, amountWei: amount, txHash: r.hash, gasCostWei: r.gasCostWei };
}
