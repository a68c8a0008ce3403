/**
 * Writes tiny (or benchmark-sized) random Hugging Face checkpoints in the real layout, e.g. to try
 * `plumise blocks run` or to serve them from a local hub.
 *
 *   deno run -A scripts/fixtures.ts --family bloom|llama --out DIR [--layers N] [--heads N]
 *     [--kv-heads N] [--head-dim N] [--shards N] [--seed N] [--bloom-560m]
 *
 * `--bloom-560m` gives bloom-560m-sized blocks (hidden 1024, 16 heads) for benchmarks.
 * @module
 */
import { parseArgs } from "node:util";
import {
  type Checkpoint,
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
} from "../tests/helpers/checkpoint_fixture.ts";

/** Bloom-560m-sized random blocks (hidden 1024, 16 heads of 64, 4·H MLP), `layers` of them. */
export function makeBloom560mBlocks(dir: string, layers: number, seed = 560): Promise<Checkpoint> {
  return makeBloomCheckpoint({
    dir,
    numHeads: 16,
    headDim: 64,
    numLayers: layers,
    shards: 1,
    seed,
    scale: 0.5,
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      family: { type: "string", default: "bloom" },
      out: { type: "string" },
      layers: { type: "string" },
      heads: { type: "string" },
      "kv-heads": { type: "string" },
      "head-dim": { type: "string" },
      shards: { type: "string" },
      seed: { type: "string" },
      "bloom-560m": { type: "boolean", default: false },
    },
  });
  if (!values.out) {
    console.error("usage: scripts/fixtures.ts --family bloom|llama --out DIR [--layers N] [--bloom-560m]");
    Deno.exit(2);
  }
  const n = (v: string | undefined) => v === undefined ? undefined : Number(v);
  const t0 = performance.now();
  const ck = values["bloom-560m"]
    ? await makeBloom560mBlocks(values.out, n(values.layers) ?? 8, n(values.seed))
    : values.family === "llama"
    ? await makeLlamaCheckpoint({
      dir: values.out,
      numLayers: n(values.layers),
      numHeads: n(values.heads),
      numKvHeads: n(values["kv-heads"]),
      headDim: n(values["head-dim"]),
      shards: n(values.shards),
      seed: n(values.seed),
    })
    : await makeBloomCheckpoint({
      dir: values.out,
      numLayers: n(values.layers),
      numHeads: n(values.heads),
      headDim: n(values["head-dim"]),
      shards: n(values.shards),
      seed: n(values.seed),
    });
  console.log(JSON.stringify({ dir: ck.dir, files: ck.files, ms: Math.round(performance.now() - t0) }));
}
