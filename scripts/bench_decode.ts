/**
 * The generation loop's text: the text of a generation after each new token, decoded whole each
 * time (the loop before `IncrementalText`) and from a short window (`IncrementalText`), over the
 * same token ids in one process. The tokenizer is the Qwen-shaped byte-level BPE of the test
 * checkpoints (tests/helpers/tokenizer_fixture.ts) and the text mixes ASCII, accents, CJK and emoji.
 *
 *   deno task bench decode [--tokens 8000] [--rounds 2] [--json]
 *
 * `--json` prints `{tokens, rounds, full_us_per_token, incremental_us_per_token, ratio, same_text}`
 * (medians over the rounds; docs/benchmarks.md, "The generation's text").
 * @module
 */
import { parseArgs } from "node:util";
import { tokenizerFromJson } from "../lib/runtime/hf_tokenizer.ts";
import { IncrementalText } from "../lib/swarm/client/incremental_text.ts";
import { qwenTokenizerFiles } from "../tests/helpers/tokenizer_fixture.ts";
import { argsOrExit, median, positiveInts } from "./generation_bench.ts";

const TEXT = "The quick brown fox — jumps over the lazy dog, naïve café 東京 🙂. ";

export interface DecodeBenchResult {
  tokens: number;
  rounds: number;
  full_us_per_token: number;
  incremental_us_per_token: number;
  ratio: number;
  same_text: boolean;
}

/** Times both ways over `tokens` ids, `rounds` times each, alternating. */
export function measureDecode(tokens: number, rounds: number): DecodeBenchResult {
  const f = qwenTokenizerFiles();
  const tok = tokenizerFromJson(f.tokenizerJson, f.tokenizerConfig);
  let ids = tok.encode(TEXT, { addSpecialTokens: false });
  ids = Array.from({ length: tokens }, (_, i) => ids[i % ids.length]);
  const full: number[] = [], incr: number[] = [];
  let same = true;
  for (let r = 0; r < rounds; r++) {
    let t0 = performance.now();
    let whole = "";
    for (let i = 1; i <= ids.length; i++) whole = tok.decode(ids.slice(0, i));
    full.push((performance.now() - t0) / tokens);
    t0 = performance.now();
    const inc = new IncrementalText((w) => tok.decode(w));
    let text = "";
    for (const id of ids) text = inc.push(id);
    incr.push((performance.now() - t0) / tokens);
    same &&= text === whole;
  }
  const fullUs = median(full) * 1000, incrUs = median(incr) * 1000;
  return {
    tokens,
    rounds,
    full_us_per_token: Math.round(fullUs * 10) / 10,
    incremental_us_per_token: Math.round(incrUs * 100) / 100,
    ratio: Math.round((fullUs / incrUs) * 10) / 10,
    same_text: same,
  };
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "boolean", default: false },
      tokens: { type: "string", default: "8000" },
      rounds: { type: "string", default: "2" },
    },
  });
  const { tokens, rounds } = argsOrExit(() => positiveInts(a, ["tokens", "rounds"]));
  const r = measureDecode(tokens, rounds);
  if (a.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `${r.tokens} tokens: decoded whole ${r.full_us_per_token} µs per token, from a window ` +
        `${r.incremental_us_per_token} µs (${r.ratio}×), same text: ${r.same_text}`,
    );
  }
}
