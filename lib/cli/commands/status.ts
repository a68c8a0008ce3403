import type { Command } from "@commander-js/extra-typings";
import { UnavailableError } from "../../errors.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";

/** `plumise status`: the agent's on-chain and Oracle status. */
export function registerStatus(program: Command, ctx: CommandContext): void {
  const cmd = program.command("status").description("show the agent's chain, reward and Oracle status")
    .option("--json", "print one JSON object");
  addConfigOptions(cmd, [
    "privateKey",
    "keystore",
    "rpcUrl",
    "chainId",
    "oracleUrl",
    "rewardPool",
    "agentRegistry",
  ]);
  cmd.action((opts) => {
    ctx.resolve(opts as Record<string, unknown>);
    throw new UnavailableError("NOT_AVAILABLE", "`plumise status` is not available in this build yet", {
      hint: "the chain agent has not landed; follow the README",
    });
  });
}
