import type { Command } from "@commander-js/extra-typings";
import { preflight } from "../../chain/preflight.ts";
import { formatPlm } from "../../chain/preflight.ts";
import { ChainProvider } from "../../chain/provider.ts";
import { claimIfDue, RewardPool } from "../../chain/rewards.ts";
import { TxQueue } from "../../chain/tx_queue.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { walletFromConfig } from "./_wallet_source.ts";

/** `plumise claim`: claim the pending RewardPool reward now (when it is > 0). */
export function registerClaim(program: Command, ctx: CommandContext): void {
  const cmd = program.command("claim")
    .description("claim pending rewards from the RewardPool now, if any")
    .option("--json", "print one JSON object");
  addConfigOptions(cmd, ["privateKey", "keystore", "rpcUrl", "chainId", "rewardPool"]);
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const logger = ctx.logger(config);
    const wallet = await walletFromConfig(config);
    const provider = new ChainProvider({ rpcUrl: config.rpcUrl, chainId: config.chainId });
    try {
      await preflight({ provider, address: wallet.address, logger, signal: ctx.signal });
      const outcome = await claimIfDue({
        pool: new RewardPool(provider, config.rewardPool),
        queue: new TxQueue({ provider, wallet, logger }),
        thresholdWei: 1n,
        logger,
        signal: ctx.signal,
      });
      if (opts.json) {
        ctx.stdout(JSON.stringify(
          outcome.claimed
            ? { claimed: true, amountWei: outcome.amountWei.toString(), txHash: outcome.txHash }
            : { claimed: false, reason: outcome.reason, pendingWei: outcome.pendingWei.toString() },
        ));
      } else if (outcome.claimed) {
        ctx.stdout(`claimed ${formatPlm(outcome.amountWei)} in ${outcome.txHash}`);
      } else {
        ctx.stdout(`nothing claimed: ${outcome.reason}`);
      }
    } finally {
      provider.destroy();
    }
  });
}
