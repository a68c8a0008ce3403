/**
 * Start-up checks against the chain: `eth_chainId` must equal the configured chain id (a
 * config error naming both otherwise) and the balance is logged in PLM.
 * @module
 */
import { formatEther } from "ethers";
import { ConfigError } from "../errors.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import type { ChainProvider } from "./provider.ts";

export interface PreflightResult {
  readonly chainId: number;
  readonly balanceWei: bigint;
}

/** `x.xxxx PLM` (4 decimals, rounded down). */
export function formatPlm(wei: bigint): string {
  const [whole, frac = ""] = formatEther(wei).split(".");
  return `${whole}.${frac.padEnd(4, "0").slice(0, 4)} PLM`;
}

/** Throws ConfigError `CHAIN_ID_MISMATCH`, or a ChainError when the RPC is unreachable/garbage. */
export async function preflight(options: {
  provider: ChainProvider;
  address: string;
  logger?: Logger;
  signal?: AbortSignal;
}): Promise<PreflightResult> {
  const { provider, address } = options;
  const logger = options.logger ?? silentLogger;
  const chainId = await provider.getChainId({ signal: options.signal });
  if (chainId !== provider.chainId) {
    throw new ConfigError(
      "CHAIN_ID_MISMATCH",
      `the RPC ${provider.displayUrl} is chain ${chainId}, but PLUMISE_CHAIN_ID is ${provider.chainId}`,
      {
        hint: "fix PLUMISE_CHAIN_ID (41956 mainnet, 419561 testnet) or PLUMISE_RPC_URL",
        details: { actual: chainId, expected: provider.chainId },
      },
    );
  }
  const balanceWei = await provider.getBalance(address, { signal: options.signal });
  logger.info("chain preflight ok", { chainId, address, balance: formatPlm(balanceWei) });
  if (balanceWei === 0n) {
    logger.warn("the agent wallet has no PLM: transactions (registration, heartbeat, claim) will fail", {
      address,
    });
  }
  return { chainId, balanceWei };
}
