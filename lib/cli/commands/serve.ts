import type { Command } from "@commander-js/extra-typings";
import { requireWallet } from "../../config/resolve_config.ts";
import { ConfigError } from "../../errors.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions, ALL_FLAG_KEYS } from "../config_options.ts";
import { promptHidden } from "./_wallet_source.ts";

/** `plumise serve`: run the node. */
export function registerServe(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("serve")
    .description("run the node: serve blocks to the swarm, report to the Oracle, earn PLM");
  addConfigOptions(cmd, ALL_FLAG_KEYS);
  cmd.action(async (opts) => {
    let { config } = ctx.resolve(opts as Record<string, unknown>);
    if (!config.offline) requireWallet(config);
    if (!config.offline && !config.privateKey && config.keystore && config.keystorePassword === undefined) {
      // on a terminal the password is asked for, as wallet and doctor do; elsewhere the chain
      // part refuses with KEYSTORE_PASSWORD_MISSING
      const password = await promptHidden(`Password of ${config.keystore}: `);
      if (password !== undefined) config = { ...config, keystorePassword: password };
      else if (Deno.stdin.isTerminal()) {
        // the prompt was cancelled (Ctrl-C, Ctrl-D): the node does not start without its wallet
        throw new ConfigError(
          "KEYSTORE_PASSWORD_MISSING",
          `no password given for keystore ${config.keystore}`,
          {
            hint: "run serve again and type the password, or set PLUMISE_KEYSTORE_PASSWORD",
          },
        );
      }
    }
    // The whole node (lib/node): SIGINT/SIGTERM → graceful stop; a second signal exits at once (cli.ts).
    const { createNode, runNode } = await import("../../node/node.ts");
    await runNode(createNode(config, { logger: ctx.logger(config) }), { signal: ctx.signal });
  });
}
