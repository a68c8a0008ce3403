import type { Command } from "@commander-js/extra-typings";
import { AgentRegistryReader } from "../../chain/agent_registry.ts";
import { ensureRegistered } from "../../chain/agent_registration.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { withSigner } from "./_wallet_source.ts";

/** `plumise register`: register the agent via precompile 0x21 unless it already is. */
export function registerRegister(program: Command, ctx: CommandContext): void {
  const cmd = program.command("register")
    .description("register the agent on chain (precompile 0x21); idempotent")
    .option("--json", "print one JSON object");
  addConfigOptions(cmd, ["privateKey", "keystore", "rpcUrl", "chainId", "model", "agentRegistry"]);
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const logger = ctx.logger(config, { quiet: true });
    await withSigner(config, logger, async ({ wallet, provider, queue }) => {
      const r = await ensureRegistered({
        provider,
        queue,
        modelId: config.model,
        registry: config.agentRegistry ? new AgentRegistryReader(provider, config.agentRegistry) : undefined,
        logger,
        signal: ctx.signal,
      });
      if (opts.json) {
        ctx.stdout(JSON.stringify({
          address: wallet.address,
          status: r.status,
          txHash: r.txHash ?? null,
          source: r.source,
          name: r.name,
          modelHash: r.modelHash,
        }));
      } else {
        ctx.stdout(r.status === "registered" ? r.txHash! : `already registered (${wallet.address})`);
      }
    }, { signal: ctx.signal });
  });
}
