/**
 * `plumise generate "prompt"`: generates text through the swarm (the head runs locally, the
 * blocks on the swarm's servers), streaming tokens as they arrive, then a summary line.
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { ConfigError } from "../../errors.ts";
import type { CommandContext } from "../command_context.ts";
import { addConfigOptions } from "../config_options.ts";
import { modelSource } from "../../runtime/model_source.ts";

export function flagNumber(
  flag: string,
  value: string | undefined,
  opts: { int?: boolean; min?: number; max?: number } = {},
) {
  if (value === undefined) return undefined;
  // decimal only (Number() also reads 0x10), integers exactly (not past 2^53)
  const decimal = opts.int ? /^\s*[+-]?\d+\s*$/ : /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;
  const n = decimal.test(value) ? Number(value) : NaN;
  const ok = Number.isFinite(n) && (!opts.int || Number.isSafeInteger(n)) &&
    (opts.min === undefined || n >= opts.min) && (opts.max === undefined || n <= opts.max);
  if (!ok) {
    const range = `${opts.int ? "an integer" : "a number"}${opts.min !== undefined ? ` ≥ ${opts.min}` : ""}${
      opts.max !== undefined ? ` and ≤ ${opts.max}` : ""
    }`;
    throw new ConfigError("CLI_FLAG_INVALID", `--${flag} must be ${range}, got ${JSON.stringify(value)}`, {
      hint: `e.g. --${flag} ${opts.int ? "32" : "0.8"}`,
    });
  }
  return n;
}

/** Registers `plumise generate`. */
export function registerGenerate(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("generate")
    .description("generate text through the swarm (head local, blocks on the swarm's servers)")
    .argument("<prompt>", "the prompt text")
    .option("--max-new-tokens <n>", "most new tokens", "32")
    .option("--temperature <t>", "0 = greedy (default); higher = more random", "0")
    .option("--top-k <k>", "sample among the k most likely tokens (0 = off)")
    .option("--top-p <p>", "sample from the smallest set of tokens with probability ≥ p (1 = off)")
    .option("--repetition-penalty <r>", "> 1 discourages repeating tokens (1 = off)")
    .option("--seed <n>", "seed for reproducible sampling")
    .option("--stop <text...>", "stop when the output contains this text (repeatable)")
    .option("--stream", "print tokens as they arrive")
    .option("--json", "print JSON (with --stream: one line per token, then the summary)");
  addConfigOptions(cmd, [
    "model",
    "revision",
    "initialPeers",
    "weights",
    "hfEndpoint",
    "hfToken",
    "hfHome",
    "threads",
    "cpuPinning",
  ]);
  cmd.action(async (prompt, opts) => {
    const { config, sources } = ctx.resolve(opts as Record<string, unknown>);
    // insist on a weight format only when the user asked for one (the config default is the server's)
    const weights = sources.weights === "flag" || sources.weights === "env" ? config.weights : undefined;
    const maxNewTokens = flagNumber("max-new-tokens", opts.maxNewTokens, { int: true, min: 1, max: 65536 })!;
    const sampling = {
      temperature: flagNumber("temperature", opts.temperature, { min: 0, max: 100 }),
      topK: flagNumber("top-k", opts.topK, { int: true, min: 0 }),
      topP: flagNumber("top-p", opts.topP, { min: 0, max: 1 }),
      repetitionPenalty: flagNumber("repetition-penalty", opts.repetitionPenalty, { min: 0 }),
      seed: flagNumber("seed", opts.seed, { int: true }),
    };
    if (config.initialPeers.length === 0) {
      throw new ConfigError(
        "NO_INITIAL_PEERS",
        "generate needs the swarm's address: no initial peers given",
        {
          hint: "pass --initial-peers /ip4/…/tcp/…/p2p/12D3KooW… (or set PETALS_INITIAL_PEERS)",
        },
      );
    }
    const logger = ctx.logger(config, { quiet: true });
    const source = modelSource(config);
    const { createClientHead, loadTokenizer } = await import("../../runtime/mod.ts");
    const { connectSwarm, describeRoute } = await import("../../swarm/client/mod.ts");
    const head = createClientHead({
      ...source,
      weights: config.weights,
      threads: config.threads,
      pinning: config.cpuPinning,
      logger,
      signal: ctx.signal,
    });
    const tokenizer = await loadTokenizer(source);
    await head.start();
    try {
      const client = await connectSwarm({
        model: config.model,
        initialPeers: config.initialPeers,
        head,
        tokenizer,
        weights,
        logger,
        signal: ctx.signal,
      });
      try {
        const promptTokens = tokenizer.encode(prompt).length;
        const session = client.openSession({ maxLength: promptTokens + maxNewTokens });
        const generation = client.generateWith(
          session,
          prompt,
          {
            maxNewTokens,
            stopStrings: opts.stop,
            ...sampling,
            signal: ctx.signal,
          },
          undefined,
          () => session.close(),
        );
        for await (const token of generation) {
          if (!opts.stream) continue;
          if (opts.json) ctx.stdout(JSON.stringify({ token: token.tokenId, text: token.text }));
          else ctx.write(token.text);
        }
        const r = generation.result!;
        const route = describeRoute(session.route);
        const summary = {
          text: r.text,
          tokens: r.tokenIds.length,
          promptTokens: r.promptTokens,
          tokensPerSecond: Math.round(r.tokensPerSecond * 100) / 100,
          reason: r.reason,
          route,
          failovers: session.stats.failures,
        };
        if (opts.json) {
          ctx.stdout(JSON.stringify(summary));
        } else {
          if (opts.stream) ctx.write("\n");
          else ctx.stdout(r.text);
          ctx.stderr(
            `${summary.tokens} tokens, ${summary.tokensPerSecond} tokens/s, stop: ${r.reason}, route: ${route}` +
              (summary.failovers ? `, ${summary.failovers} failover(s)` : ""),
          );
        }
      } finally {
        await client.stop();
      }
    } finally {
      await head.stop();
    }
  });
}
