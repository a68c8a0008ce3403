import type { Command } from "@commander-js/extra-typings";
import { requireWallet } from "../../config/resolve_config.ts";
import { errorMessage, PlumiseError } from "../../errors.ts";
import { runDoctor } from "../../node/doctor.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { walletFromConfig } from "./_wallet_source.ts";
import { availableMemoryBytes } from "../../util/available_memory.ts";

/** `plumise doctor [--json] [--offline]`: pre-flight checks of this machine and its settings; exit 0 when all pass. */
export function registerDoctor(program: Command, ctx: CommandContext): void {
  const cmd = program.command("doctor")
    .description(
      "check this machine and its settings before going live (engine, memory, disk, ports, chain, Oracle, hub)",
    )
    .option("--json", 'print {"checks":[{"name","ok","detail","hint"?}]}');
  addConfigOptions(cmd, [
    "tier",
    "model",
    "revision",
    "numBlocks",
    "weights",
    "offline",
    "privateKey",
    "keystore",
    "rpcUrl",
    "chainId",
    "oracleUrl",
    "rewardPool",
    "agentRegistry",
    "hfEndpoint",
    "hfHome",
    "dataDir",
    "identityPath",
    "p2pHost",
    "p2pPort",
    "directPort",
    "apiHost",
    "apiPort",
  ]);
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    let wallet: { address: string } | { error: string; hint: string } | undefined;
    if (!config.offline) {
      try {
        requireWallet(config);
        wallet = { address: (await walletFromConfig(config)).address };
      } catch (err) {
        const none = err instanceof PlumiseError && !config.privateKey && !config.keystore;
        wallet = none ? undefined : {
          error: errorMessage(err),
          hint: err instanceof PlumiseError ? err.hint : "check the wallet settings",
        };
      }
    }
    const memory = availableMemoryBytes();
    const checks = await runDoctor(config, { wallet, availableMemoryBytes: memory, signal: ctx.signal });
    if (opts.json) ctx.stdout(JSON.stringify({ checks }));
    else {
      for (const c of checks) {
        ctx.stdout(`${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
        if (!c.ok && c.hint) ctx.stdout(`     hint: ${c.hint}`);
      }
      const failed = checks.filter((c) => !c.ok).length;
      ctx.stdout(
        failed ? `${failed} of ${checks.length} checks failed` : `all ${checks.length} checks passed`,
      );
    }
    ctx.setExitCode(checks.every((c) => c.ok) ? 0 : 1);
  });
}
