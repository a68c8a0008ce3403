/**
 * `plumise bench [--json]`: measures this machine's block throughput for the configured model —
 * the figures `serve` announces — and stores them in the data directory's throughput cache, so
 * the next `serve` start announces them without measuring again. Run it while no `serve` runs on
 * the machine: both would share the cores and measure each other.
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";

const ms = (x: number) => `${x.toFixed(2)} ms`;

/** Registers `plumise bench`. */
export function registerBench(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("bench")
    .description(
      "measure this machine's block throughput (the figures serve announces) and cache it for serve",
    )
    .option("--json", "print one JSON object");
  addConfigOptions(cmd, [
    "tier",
    "model",
    "revision",
    "numBlocks",
    "blockIndices",
    "weights",
    "threads",
    "cpuPinning",
    "throughput",
    "cacheTokens",
    "dataDir",
    "hfEndpoint",
    "hfToken",
    "hfHome",
  ]);
  cmd.action(async (opts) => {
    const { config } = ctx.resolve(opts as Record<string, unknown>);
    const { benchNode } = await import("../../node/bench_node.ts");
    const r = await benchNode(config, ctx.logger(config), { signal: ctx.signal });
    const s = r.speed;
    if (opts.json) {
      ctx.stdout(JSON.stringify({
        model: r.model,
        start: r.start,
        end: r.end,
        totalBlocks: r.totalBlocks,
        weights: r.weights,
        threads: r.threads,
        hotStepMs: round(s.hotStepMs),
        pipelinedStepMs: round(s.pipelinedStepMs),
        gapMs: round(s.gapMs),
        idlePenalty: round(s.idlePenalty),
        prefillTokensPerSecond: round(s.prefillTokensPerSecond),
        ...r.figures,
        cache: r.cachedAt ?? null,
        cacheError: r.cacheError ?? null,
        throughputOverride: config.throughput ?? null,
      }));
      return;
    }
    ctx.stdout(
      `${r.model}: blocks ${r.start}:${r.end} (${
        r.end - r.start
      } of ${r.totalBlocks}), ${r.weights}, ${r.threads} thread(s)`,
    );
    ctx.stdout(
      `decode step: ${ms(s.hotStepMs)} right after a step, ${ms(s.pipelinedStepMs)} after a ${
        ms(s.gapMs)
      } wait (×${s.idlePenalty.toFixed(2)})`,
    );
    ctx.stdout(`prefill: ${Math.round(s.prefillTokensPerSecond)} tokens/s`);
    const f = r.figures;
    ctx.stdout(
      `announced: throughput ${f.throughput} tokens/s, inference ${f.inferenceRps} and forward ${f.forwardRps} block-steps/s, network ${f.networkRps} tokens/s (assumed link)`,
    );
    if (config.throughput !== undefined) {
      ctx.stdout(`serve announces ${config.throughput} tokens/s instead: THROUGHPUT / --throughput is set`);
    }
    ctx.stdout(
      r.cachedAt
        ? `cached in ${r.cachedAt}: the next serve start announces these for ${
          r.end - r.start
        } blocks of this model (a running serve keeps what it measured)`
        : `not cached (${r.cacheError}): serve will measure again`,
    );
  });
}

const round = (x: number) => Math.round(x * 100) / 100;
