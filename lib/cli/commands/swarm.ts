import type { Command } from "@commander-js/extra-typings";
import { ConfigError } from "../../errors.ts";
import { observeSwarm } from "../../swarm/observe_swarm.ts";
import { formatSwarmTableView, swarmTableView } from "../../swarm/swarm_table_view.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";

/**
 * `plumise swarm [--json]`: asks the bootstrap peers for the swarm table and prints, per model,
 * the servers and the per-block coverage (blocks nobody serves highlighted). Without a model set
 * (flag, env, .env or tier) every model in the table is shown. Exit 1 when no bootstrap peer is
 * given or none answers.
 */
export function registerSwarm(program: Command, ctx: CommandContext): void {
  const cmd = program.command("swarm")
    .description("show the swarm table: servers and block coverage per model (asks the bootstrap peers)")
    .option("--json", "print one JSON object")
    .option("--timeout <ms>", "how long to wait for each bootstrap peer", "5000");
  addConfigOptions(cmd, ["model", "initialPeers"]);
  cmd.action(async (opts) => {
    const { config, sources } = ctx.resolve(opts as Record<string, unknown>);
    const timeout = Number(opts.timeout);
    if (!Number.isSafeInteger(timeout) || timeout < 100 || timeout > 600_000) {
      throw new ConfigError(
        "CONFIG_INVALID",
        `--timeout must be 100..600000 ms, got ${JSON.stringify(opts.timeout)}`,
        {
          hint: "e.g. --timeout 5000",
        },
      );
    }
    const snap = await observeSwarm({
      initialPeers: config.initialPeers,
      requestMs: timeout,
      logger: ctx.logger(config, { quiet: true }),
      signal: ctx.signal,
    });
    const models = sources.model === "default" ? undefined : [config.model];
    const view = swarmTableView(snap.entries, { now: snap.takenAt, models });
    if (opts.json) {
      ctx.stdout(JSON.stringify({
        initialPeers: snap.initialPeers,
        initialPeersReached: snap.initialPeersReached,
        ...view,
      }));
      return;
    }
    ctx.stdout(
      `swarm table from ${snap.initialPeersReached} of ${snap.initialPeers} bootstrap peer(s), ${snap.entries.length} record(s)`,
    );
    ctx.stdout("");
    for (const line of formatSwarmTableView(view, { color: ctx.isTerminal })) ctx.stdout(line);
    if (models && snap.entries.some((e) => e.record.model !== models[0])) {
      const others = [...new Set(snap.entries.map((e) => e.record.model).filter((m) => m !== models[0]))];
      ctx.stdout("");
      ctx.stdout(`other models in the swarm: ${others.join(", ")} (leave out --model to see them)`);
    }
  });
}
