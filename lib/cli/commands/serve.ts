import type { Command } from "@commander-js/extra-typings";
import { requireWallet } from "../../config/resolve_config.ts";
import { UnavailableError } from "../../errors.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions, ALL_FLAG_KEYS } from "../config_options.ts";

/** `plumise serve`: run the node. */
export function registerServe(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("serve")
    .description("run the node: serve blocks to the swarm, report to the Oracle, earn PLM");
  addConfigOptions(cmd, ALL_FLAG_KEYS);
  cmd.action((opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    if (!config.offline) requireWallet(config);
    throw new UnavailableError("NOT_AVAILABLE", "`plumise serve` is not available in this build yet", {
      hint: "the node composition (runtime + swarm + chain + reporter) has not landed; follow the README",
    });
  });
}
