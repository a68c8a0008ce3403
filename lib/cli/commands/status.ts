import type { Command } from "@commander-js/extra-typings";
import { formatChainStatus, gatherChainStatus } from "../../chain/status.ts";
import { errorMessage } from "../../errors.ts";
import { redactUrl } from "../../util/secret_url.ts";
import { fetchOracleAgentView, type OracleAgentView } from "../../reporter/oracle_agent_view.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { walletFromConfig } from "./_wallet_source.ts";

/** `plumise status`: the agent's chain, reward and Oracle status; exit 0 if the chain answered, 1 otherwise. */
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
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const wallet = await walletFromConfig(config);
    const [chain, oracle] = await Promise.all([
      gatherChainStatus({
        address: wallet.address,
        rpcUrl: config.rpcUrl,
        chainId: config.chainId,
        rewardPool: config.rewardPool,
        agentRegistry: config.agentRegistry,
        signal: ctx.signal,
      }),
      fetchOracleAgentView(config.oracleUrl, wallet.address, { signal: ctx.signal }).then(
        (value): { ok: true; value: OracleAgentView } => ({ ok: true, value }),
        (err): { ok: false; reason: string } => ({ ok: false, reason: errorMessage(err) }),
      ),
    ]);
    if (opts.json) {
      ctx.stdout(JSON.stringify({ ...chain, oracle: { url: redactUrl(config.oracleUrl), ...oracle } }));
    } else {
      for (const line of formatChainStatus(chain)) ctx.stdout(line);
      ctx.stdout(
        `Oracle:         ${
          oracle.ok
            ? `${oracle.value.tokensProcessed} tokens, ${oracle.value.requestCount} requests` +
              (oracle.value.lastUpdated ? `, last report ${oracle.value.lastUpdated}` : "")
            : `unavailable (${oracle.reason})`
        }`,
      );
    }
    // exit 0 if the chain answered, 1 otherwise (read by runCli)
    ctx.setExitCode(chain.online ? 0 : 1);
  });
}
