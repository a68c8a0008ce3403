import type { Command } from "@commander-js/extra-typings";
import { formatPlm } from "../../chain/preflight.ts";
import { claimIfDue, RewardPool } from "../../chain/rewards.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { withSigner } from "./_wallet_source.ts";

/** `plumise claim`: claim the pending RewardPool reward now (when it is > 0). */
export function registerClaim(program: Command, ctx: CommandContext): void {
  const cmd = program.command("claim")
    .description("claim pending rewards from the RewardPool now, if any")
    .option("--json", "print one JSON object");
  addConfigOptions(cmd, ["privateKey", "keystore", "rpcUrl", "chainId", "rewardPool"]);
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const logger = ctx.logger(config, { quiet: true });
    await withSigner(config, logger, async ({ provider, queue }) => {
      const outcome = await claimIfDue({
        pool: new RewardPool(provider, config.rewardPool),
        queue,
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
    }, { signal: ctx.signal });
  });
}
