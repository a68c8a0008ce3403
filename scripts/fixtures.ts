/**
 * Writes tiny (or benchmark-sized) random Hugging Face checkpoints in the real layout, e.g. to try
 * `plumise blocks run` or to serve them from a local hub.
 *
 *   deno run -A scripts/fixtures.ts --family bloom|llama|qwen3 --out DIR [--layers N] [--heads N]
 *     [--kv-heads N] [--head-dim N] [--shards N] [--seed N] [--bloom-560m | --qwen3-32b]
 *
 * `--bloom-560m` gives bloom-560m-sized blocks (hidden 1024, 16 heads) for benchmarks,
 * `--qwen3-32b` qwen3-32b-sized ones (hidden 5120, 64 query heads and 8 KV heads of 128,
 * intermediate 25600; about 1 GB of BF16 per block, streamed to disk).
 * @module
 */
import { parseArgs } from "node:util";
import {
  type Checkpoint,
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
  makeQwen3Checkpoint,
} from "../tests/helpers/checkpoint_fixture.ts";
import { qwenTokenizerFiles } from "../tests/helpers/tokenizer_fixture.ts";

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

/** Qwen3-32B's block shape. */
export const QWEN3_32B = { hidden: 5120, heads: 64, kvHeads: 8, headDim: 128, intermediate: 25600 } as const;

/**
 * `layers` random blocks of Qwen3-32B's shape in one BF16 `model.safetensors` (with a small
 * vocabulary so the head stays small), written tensor by tensor so memory stays at one chunk.
 * Weights are uniform with the std of a 1/√fan-in init; norms near 1. Returns the directory.
 */
export async function makeQwen3_32bBlocks(dir: string, layers: number, seed = 32): Promise<string> {
  const { hidden: H, heads, kvHeads, headDim: d, intermediate: I } = QWEN3_32B;
  const tok = qwenTokenizerFiles();
  const vocab = Math.ceil(tok.size / 16) * 16;
  const tensors: Array<{ name: string; shape: number[]; std: number; mean: number }> = [];
  const add = (name: string, shape: number[], std: number, mean = 0) =>
    tensors.push({ name, shape, std, mean });
  add("model.embed_tokens.weight", [vocab, H], 1);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    add(p + "input_layernorm.weight", [H], 0.1, 1);
    add(p + "self_attn.q_proj.weight", [heads * d, H], 1 / Math.sqrt(H));
    add(p + "self_attn.k_proj.weight", [kvHeads * d, H], 1 / Math.sqrt(H));
    add(p + "self_attn.v_proj.weight", [kvHeads * d, H], 1 / Math.sqrt(H));
    add(p + "self_attn.q_norm.weight", [d], 0.1, 1);
    add(p + "self_attn.k_norm.weight", [d], 0.1, 1);
    add(p + "self_attn.o_proj.weight", [H, heads * d], 0.5 / Math.sqrt(heads * d));
    add(p + "post_attention_layernorm.weight", [H], 0.1, 1);
    add(p + "mlp.gate_proj.weight", [I, H], 1 / Math.sqrt(H));
    add(p + "mlp.up_proj.weight", [I, H], 1 / Math.sqrt(H));
    add(p + "mlp.down_proj.weight", [H, I], 0.5 / Math.sqrt(I));
  }
  add("model.norm.weight", [H], 0.1, 1);
  add("lm_head.weight", [vocab, H], 1 / Math.sqrt(H));
  await Deno.mkdir(dir, { recursive: true });
  const config = {
    architectures: ["Qwen3ForCausalLM"],
    model_type: "qwen3",
    vocab_size: vocab,
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: d,
    hidden_act: "silu",
    max_position_embeddings: 40960,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_scaling: null,
    attention_bias: false,
    use_sliding_window: false,
    sliding_window: null,
    tie_word_embeddings: false,
    torch_dtype: "bfloat16",
  };
  const json = (name: string, v: unknown) => Deno.writeTextFile(`${dir}/${name}`, JSON.stringify(v, null, 2));
  await json("config.json", config);
  await json("tokenizer.json", tok.tokenizerJson);
  await json("tokenizer_config.json", tok.tokenizerConfig);
  await json("generation_config.json", tok.generationConfig);
  // safetensors: u64 header length, the JSON header (padded to 8 bytes), then the tensors in order
  const count = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
  const meta: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const t of tensors) {
    meta[t.name] = { dtype: "BF16", shape: t.shape, data_offsets: [off, off + 2 * count(t.shape)] };
    off += 2 * count(t.shape);
  }
  let text = JSON.stringify(meta);
  while ((8 + text.length) % 8 !== 0) text += " ";
  const hb = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + hb.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(hb.length), true);
  header.set(hb, 8);
  const file = await Deno.open(`${dir}/model.safetensors.partial`, {
    write: true,
    create: true,
    truncate: true,
  });
  try {
    await writeAll(file, header);
    let s = (seed >>> 0) || 1;
    const chunk = new Uint16Array(1 << 22);
    const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
    for (const t of tensors) {
      const a = t.std * Math.sqrt(3); // uniform [-a, a] has std a/√3
      for (let left = count(t.shape); left > 0;) {
        const n = Math.min(left, chunk.length);
        for (let i = 0; i < n; i++) {
          s ^= s << 13;
          s ^= s >>> 17;
          s ^= s << 5;
          f32[0] = t.mean + a * (((s >>> 0) / 2 ** 31) - 1);
          chunk[i] = (u32[0] + 0x7fff + ((u32[0] >>> 16) & 1)) >>> 16;
        }
        await writeAll(file, new Uint8Array(chunk.buffer, 0, 2 * n));
        left -= n;
      }
    }
  } finally {
    file.close();
  }
  await Deno.rename(`${dir}/model.safetensors.partial`, `${dir}/model.safetensors`);
  return dir;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
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
      "qwen3-32b": { type: "boolean", default: false },
    },
  });
  if (!values.out) {
    console.error(
      "usage: scripts/fixtures.ts --family bloom|llama|qwen3 --out DIR [--layers N] [--bloom-560m | --qwen3-32b]",
    );
    Deno.exit(2);
  }
  const n = (v: string | undefined) => v === undefined ? undefined : Number(v);
  const t0 = performance.now();
  if (values["qwen3-32b"]) {
    const dir = await makeQwen3_32bBlocks(values.out, n(values.layers) ?? 1, n(values.seed));
    console.log(JSON.stringify({ dir, ms: Math.round(performance.now() - t0) }));
    Deno.exit(0);
  }
  const llama = {
    dir: values.out,
    numLayers: n(values.layers),
    numHeads: n(values.heads),
    numKvHeads: n(values["kv-heads"]),
    headDim: n(values["head-dim"]),
    shards: n(values.shards),
    seed: n(values.seed),
  };
  const ck = values["bloom-560m"]
    ? await makeBloom560mBlocks(values.out, n(values.layers) ?? 8, n(values.seed))
    : values.family === "llama"
    ? await makeLlamaCheckpoint(llama)
    : values.family === "qwen3"
    ? await makeQwen3Checkpoint(llama)
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
