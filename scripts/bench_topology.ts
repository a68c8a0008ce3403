/**
 * `deno task bench topology`: does the swarm's topology matter on this machine? Greedy generation
 * (the same loop as bench:swarm) through three span processes with no protocol at all, wired two
 * ways, against the same model in one process, alternating in one run:
 *
 * - `mediated`: the client sends each step to span 1, gets its output back, sends it to span 2, …
 *   (the swarm client's topology; scripts/pipe_span_process.ts, bench:swarm's floor);
 * - `chained`: the client sends the step to span 1, which pushes its output straight to span 2,
 *   which pushes to span 3, which returns to the client (server-to-server push, Petals'
 *   `rpc_push`; scripts/chain_span_process.ts) — two fewer turns through the client per token.
 *
 * If chaining beat mediation by a margin, server-to-server push would be worth building into the
 * swarm protocol; the report is what that decision rests on.
 *
 *   deno task bench topology [--json] [--runs 9] [--tokens 32] [--layers 12] [--heads 16] [--head-dim 64] [--threads 2]
 *
 * `--json` prints `{"local_tok_s", "mediated_tok_s", "chained_tok_s", "ratio_mediated", "ratio_chained",
 * "chained_vs_mediated", "paired", ...}`: medians over the runs, and `paired` the medians of the
 * per-run ratios (each run's variants ran back to back, so a slow spell of the machine cancels).
 * @module
 */
import { parseArgs } from "node:util";
import { createBlockRuntime, createClientHead, loadTokenizer } from "../lib/runtime/mod.ts";
import { generateText, type GenerationResult } from "../lib/swarm/client/generate_text.ts";
import { type Chain, spawnChain } from "./chain_span_process.ts";
import { type PipeSpan, spawnPipeSpan } from "./pipe_span_process.ts";
import {
  argsOrExit,
  GENERATION_BENCH_OPTIONS,
  generationBenchArgs,
  makeBenchModel,
  median,
  stepSessionOver,
  thirds,
  tokensPerSecond,
} from "./generation_bench.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: { ...GENERATION_BENCH_OPTIONS, runs: { type: "string", default: "9" } },
});
const n = argsOrExit(() => generationBenchArgs(a));
const log = (msg: string) => a.json || console.error(msg);

const ck = await makeBenchModel(n);
const model = ck.dir, threads = n.threads;
log(
  `model: BLOOM-style, ${n.layers} blocks, hidden ${ck.config.hidden_size}, ${n.tokens} new tokens, ${threads} threads`,
);
const head = createClientHead({ model, threads });
await head.start();
const tokenizer = await loadTokenizer({ model });
const local = createBlockRuntime({ model, start: 0, end: n.layers, weights: "fp32", threads });
await local.start();
const cuts = thirds(n.layers);
const pipes: PipeSpan[] = [];
let chain: Chain | undefined;
const options = { maxNewTokens: n.tokens, eosTokenIds: [] as number[] };
try {
  for (let i = 0; i < 3; i++) {
    pipes.push(await spawnPipeSpan({ model, start: cuts[i], end: cuts[i + 1], threads }));
  }
  chain = await spawnChain({ model, cuts, threads });
  const c = chain;
  const variants: Record<string, () => Promise<GenerationResult>> = {
    local: async () => {
      const session = await local.openSession({ start: 0, end: n.layers, maxLength: 512, batch: 1 });
      try {
        return await generateText({ head, tokenizer, session }, a.prompt!, options).complete();
      } finally {
        await session.close();
      }
    },
    mediated: () =>
      generateText(
        {
          head,
          tokenizer,
          session: stepSessionOver(async (h, fresh) => {
            let y = h;
            for (const p of pipes) y = await p.step(y, fresh);
            return y;
          }),
        },
        a.prompt!,
        options,
      ).complete(),
    chained: () =>
      generateText(
        { head, tokenizer, session: stepSessionOver((h, fresh) => c.step(h, fresh)) },
        a.prompt!,
        options,
      )
        .complete(),
  };
  for (const run of Object.values(variants)) await run(); // warm-up
  const tok: Record<string, number[]> = { local: [], mediated: [], chained: [] };
  const ids = new Set<string>();
  for (let i = 0; i < n.runs; i++) {
    for (const [name, run] of Object.entries(variants)) {
      const r = await run();
      tok[name].push(tokensPerSecond(r));
      ids.add(JSON.stringify(r.tokenIds));
    }
    log(`run ${i + 1}: ${Object.entries(tok).map(([k, v]) => `${k} ${v[i].toFixed(1)}`).join(", ")} tok/s`);
  }
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const per = (num: string, den: string) => median(tok[num].map((x, i) => x / tok[den][i]));
  const m = (k: string) => median(tok[k]);
  const result = {
    local_tok_s: r3(m("local")),
    mediated_tok_s: r3(m("mediated")),
    chained_tok_s: r3(m("chained")),
    ratio_mediated: r3(m("mediated") / m("local")),
    ratio_chained: r3(m("chained") / m("local")),
    chained_vs_mediated: r3(m("chained") / m("mediated")),
    paired: {
      ratio_mediated: r3(per("mediated", "local")),
      ratio_chained: r3(per("chained", "local")),
      chained_vs_mediated: r3(per("chained", "mediated")),
    },
    runs: n.runs,
    tokens: n.tokens,
    blocks: n.layers,
    same_tokens: ids.size === 1,
  };
  if (!result.same_tokens) console.error("WARNING: the variants generated different tokens");
  if (a.json) console.log(JSON.stringify(result));
  else {
    console.log(
      `local ${result.local_tok_s} tok/s; mediated ${result.mediated_tok_s} (${result.ratio_mediated}×); ` +
        `chained ${result.chained_tok_s} (${result.ratio_chained}×); chained ÷ mediated ${result.chained_vs_mediated} ` +
        `(paired medians ${result.paired.ratio_mediated}× / ${result.paired.ratio_chained}× / ${result.paired.chained_vs_mediated})`,
    );
  }
} finally {
  await chain?.stop();
  await Promise.all(pipes.map((p) => p.stop()));
  await local.stop();
  await head.stop();
  await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
}
