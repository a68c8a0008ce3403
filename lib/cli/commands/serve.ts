import type { Command } from "@commander-js/extra-typings";
import { requireWallet } from "../../config/resolve_config.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions, ALL_FLAG_KEYS } from "../config_options.ts";

/** `plumise serve`: run the node. */
export function registerServe(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("serve")
    .description("run the node: serve blocks to the swarm, report to the Oracle, earn PLM");
  addConfigOptions(cmd, ALL_FLAG_KEYS);
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    if (!config.offline) requireWallet(config);
    // The whole node (lib/node): SIGINT/SIGTERM → graceful stop; a second signal exits at once (cli.ts).
    const { createNode, runNode } = await import("../../node/node.ts");
    await runNode(createNode(config, { logger: ctx.logger(config) }), { signal: ctx.signal });
  });
}
