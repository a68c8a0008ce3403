/**
 * Tiny random Hugging Face checkpoints in the real layout, for tests and benchmarks:
 * `config.json`, `model.safetensors` or `model.safetensors.index.json` + shards (F16 for BLOOM,
 * BF16 for Llama, as the real ones), `tokenizer.json` (byte-level BPE with a small vocabulary
 * that @huggingface/tokenizers loads; Qwen's shape for Qwen3, tests/helpers/tokenizer_fixture.ts),
 * `tokenizer_config.json` (+ a chat template for Llama and Qwen3) and `generation_config.json`. Deterministic from a seed; fast (milliseconds for the test sizes).
 *
 * `tensors` holds every tensor as float32 with exactly the values stored (already rounded to the
 * file's dtype), so an independent reference can use them without reading safetensors.
 * @module
 */

import { buildTokenizer, LLAMA3_CHAT_TEMPLATE, qwenTokenizerFiles } from "./tokenizer_fixture.ts";

export type FixtureDtype = "F32" | "F16" | "BF16";

export interface FixtureTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface Checkpoint {
  /** Directory with the files. */
  readonly dir: string;
  /** The parsed config.json. */
  readonly config: Record<string, unknown>;
  /** Every tensor by checkpoint name (exact stored values as float32). */
  readonly tensors: ReadonlyMap<string, FixtureTensor>;
  /** File names in `dir`, relative. */
  readonly files: readonly string[];
  /** Shard file → tensor names in it (one entry `model.safetensors` when not sharded). */
  readonly shards: ReadonlyMap<string, readonly string[]>;
  /** Tensor key prefix of block i, e.g. `h.3.` or `model.layers.3.`. */
  blockPrefix(i: number): string;
}

export interface BloomFixtureOptions {
  dir?: string;
  seed?: number;
  /** Default 6 (not a power of two: ALiBi's extra slopes). */
  numHeads?: number;
  headDim?: number;
  numLayers?: number;
  dtype?: FixtureDtype;
  /** Number of shard files (1 = single model.safetensors). Default 3. */
  shards?: number;
  /** Prefix keys with `transformer.` (as bloom-7b1 does) instead of bare `h.N.` (bloom-560m). */
  transformerPrefix?: boolean;
  /** Scale of the random weights (default 1 = ~unit-variance activations). */
  scale?: number;
}

export interface LlamaFixtureOptions {
  dir?: string;
  seed?: number;
  /** Default numHeads × headDim; Qwen3 checkpoints may differ (the projections are then not square). */
  hiddenSize?: number;
  numHeads?: number;
  numKvHeads?: number;
  headDim?: number;
  numLayers?: number;
  intermediateSize?: number;
  dtype?: FixtureDtype;
  shards?: number;
  /** Default: llama3 scaling with small original_max_position_embeddings so it matters at short lengths. */
  ropeScaling?: Record<string, unknown> | null;
  ropeTheta?: number;
  tieWordEmbeddings?: boolean;
  /** Qwen2-style q/k/v biases. */
  attentionBias?: boolean;
  /** "llama" (default), "qwen2" (q/k/v biases) or "qwen3" (q/k norms, Qwen's tokenizer and template). */
  modelType?: string;
  scale?: number;
}

/** xorshift32 + Box-Muller; deterministic. */
class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed >>> 0) || 0x9e3779b9;
  }
  u32(): number {
    let s = this.#s;
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    this.#s = s;
    return s;
  }
  uniform(): number {
    return (this.u32() + 0.5) / 2 ** 32;
  }
  normal(): number {
    return Math.sqrt(-2 * Math.log(this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function toBf16Bits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}
function fromBf16Bits(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}

/** Encodes float32 values in `dtype`; returns the bytes and the exact decoded values. */
export function encodeTensor(
  values: Float32Array,
  dtype: FixtureDtype,
): { bytes: Uint8Array; exact: Float32Array } {
  if (dtype === "F32") return { bytes: new Uint8Array(values.slice().buffer), exact: values };
  if (dtype === "F16") {
    const h = new Float16Array(values);
    return { bytes: new Uint8Array(h.buffer), exact: Float32Array.from(h) };
  }
  const out = new Uint16Array(values.length);
  const exact = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    out[i] = toBf16Bits(values[i]);
    exact[i] = fromBf16Bits(out[i]);
  }
  return { bytes: new Uint8Array(out.buffer), exact };
}

/** Writes one safetensors file (header padded to 8 bytes, `__metadata__: {format: pt}`). */
export function encodeSafetensors(
  entries: Array<{ name: string; dtype: FixtureDtype; shape: readonly number[]; bytes: Uint8Array }>,
): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + e.bytes.length] };
    off += e.bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += " ";
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let p = 8 + hb.length;
  for (const e of entries) {
    out.set(e.bytes, p);
    p += e.bytes.length;
  }
  return out;
}

// ---------------------------------------------------------------- writing

interface PendingTensor {
  name: string;
  shape: number[];
  values: Float32Array;
  /** Block index, or -1 for head tensors. */
  block: number;
}

async function writeCheckpoint(
  dir: string,
  config: Record<string, unknown>,
  tensors: PendingTensor[],
  dtype: FixtureDtype,
  shards: number,
  numLayers: number,
  extraFiles: Record<string, unknown>,
  blockPrefix: (i: number) => string,
): Promise<Checkpoint> {
  await Deno.mkdir(dir, { recursive: true });
  const files: string[] = [];
  const write = async (name: string, value: unknown) => {
    await Deno.writeTextFile(`${dir}/${name}`, JSON.stringify(value, null, 2));
    files.push(name);
  };
  await write("config.json", config);
  for (const [name, value] of Object.entries(extraFiles)) await write(name, value);

  const exactMap = new Map<string, FixtureTensor>();
  const encoded = tensors.map((t) => {
    const { bytes, exact } = encodeTensor(t.values, dtype);
    exactMap.set(t.name, { shape: t.shape, data: exact });
    return { ...t, bytes };
  });
  const shardMap = new Map<string, string[]>();
  if (shards <= 1) {
    await Deno.writeFile(
      `${dir}/model.safetensors`,
      encodeSafetensors(encoded.map((e) => ({ ...e, dtype }))),
    );
    files.push("model.safetensors");
    shardMap.set("model.safetensors", encoded.map((e) => e.name));
  } else {
    // Shard k holds blocks [k·L/n, (k+1)·L/n); embeddings go with the first, final norm/head with the last.
    const shardOf = (t: PendingTensor) => {
      if (t.block >= 0) return Math.min(shards - 1, Math.floor((t.block * shards) / numLayers));
      return /embed|word_embeddings/.test(t.name) ? 0 : shards - 1;
    };
    const name = (k: number) =>
      `model-${String(k + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
    const weightMap: Record<string, string> = {};
    let total = 0;
    for (let k = 0; k < shards; k++) {
      const part = encoded.filter((e) => shardOf(e) === k);
      await Deno.writeFile(`${dir}/${name(k)}`, encodeSafetensors(part.map((e) => ({ ...e, dtype }))));
      files.push(name(k));
      shardMap.set(name(k), part.map((e) => e.name));
      for (const e of part) {
        weightMap[e.name] = name(k);
        total += e.bytes.length;
      }
    }
    await write("model.safetensors.index.json", { metadata: { total_size: total }, weight_map: weightMap });
  }
  return { dir, config, tensors: exactMap, files, shards: shardMap, blockPrefix };
}

function randTensor(rng: Rng, shape: number[], std: number, mean = 0): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + std * rng.normal();
  return out;
}

// ---------------------------------------------------------------- BLOOM

/** A tiny BLOOM checkpoint (bloom-560m layout, F16, 6 heads by default). */
export async function makeBloomCheckpoint(options: BloomFixtureOptions = {}): Promise<Checkpoint> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "plumise-bloom-" });
  const rng = new Rng(options.seed ?? 1);
  const nHead = options.numHeads ?? 6;
  const headDim = options.headDim ?? 8;
  const H = nHead * headDim;
  const L = options.numLayers ?? 4;
  const scale = options.scale ?? 1;
  const tok = buildTokenizer({ specialsFirst: true, specials: ["<unk>", "<s>", "</s>", "<pad>"] });
  const vocab = Math.ceil(tok.size / 16) * 16;
  const config = {
    architectures: ["BloomForCausalLM"],
    model_type: "bloom",
    vocab_size: vocab,
    hidden_size: H,
    n_layer: L,
    n_head: nHead,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    use_cache: true,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 3,
    apply_residual_connection_post_layernorm: false,
    hidden_dropout: 0,
    attention_dropout: 0,
    pretraining_tp: 1,
    slow_but_exact: false,
    torch_dtype: "float16",
    transformers_version: "4.44.0",
  };
  const pre = options.transformerPrefix ? "transformer." : "";
  const t: PendingTensor[] = [];
  const w = (fanIn: number) => scale / Math.sqrt(fanIn);
  t.push({
    name: `${pre}word_embeddings.weight`,
    shape: [vocab, H],
    values: randTensor(rng, [vocab, H], 1),
    block: -1,
  });
  t.push({
    name: `${pre}word_embeddings_layernorm.weight`,
    shape: [H],
    values: randTensor(rng, [H], 0.1, 1),
    block: -1,
  });
  t.push({
    name: `${pre}word_embeddings_layernorm.bias`,
    shape: [H],
    values: randTensor(rng, [H], 0.1),
    block: -1,
  });
  for (let i = 0; i < L; i++) {
    const p = `${pre}h.${i}.`;
    const add = (n: string, shape: number[], std: number, mean = 0) =>
      t.push({ name: p + n, shape, values: randTensor(rng, shape, std, mean), block: i });
    add("input_layernorm.weight", [H], 0.1, 1);
    add("input_layernorm.bias", [H], 0.1);
    add("self_attention.query_key_value.weight", [3 * H, H], w(H));
    add("self_attention.query_key_value.bias", [3 * H], 0.1);
    add("self_attention.dense.weight", [H, H], w(H));
    add("self_attention.dense.bias", [H], 0.1);
    add("post_attention_layernorm.weight", [H], 0.1, 1);
    add("post_attention_layernorm.bias", [H], 0.1);
    add("mlp.dense_h_to_4h.weight", [4 * H, H], w(H));
    add("mlp.dense_h_to_4h.bias", [4 * H], 0.1);
    add("mlp.dense_4h_to_h.weight", [H, 4 * H], w(4 * H));
    add("mlp.dense_4h_to_h.bias", [H], 0.1);
  }
  t.push({ name: `${pre}ln_f.weight`, shape: [H], values: randTensor(rng, [H], 0.1, 1), block: -1 });
  t.push({ name: `${pre}ln_f.bias`, shape: [H], values: randTensor(rng, [H], 0.1), block: -1 });
  const extra = {
    "tokenizer.json": tok.json,
    "tokenizer_config.json": {
      add_prefix_space: false,
      bos_token: "<s>",
      eos_token: "</s>",
      pad_token: "<pad>",
      unk_token: "<unk>",
      model_max_length: 1000000000000000019884624838656,
      tokenizer_class: "BloomTokenizer",
      padding_side: "left",
      clean_up_tokenization_spaces: false,
    },
    "generation_config.json": { bos_token_id: 1, eos_token_id: 2, pad_token_id: 3 },
  };
  return await writeCheckpoint(
    dir,
    config,
    t,
    options.dtype ?? "F16",
    options.shards ?? 3,
    L,
    extra,
    (i) => `${pre}h.${i}.`,
  );
}

// ---------------------------------------------------------------- Llama

/** A tiny Llama checkpoint (BF16, GQA 4 heads / 2 kv heads, llama3 rope scaling, untied head). */
export async function makeLlamaCheckpoint(options: LlamaFixtureOptions = {}): Promise<Checkpoint> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: `plumise-${options.modelType ?? "llama"}-` });
  const rng = new Rng(options.seed ?? 2);
  const nHead = options.numHeads ?? 4;
  const nKv = options.numKvHeads ?? 2;
  const headDim = options.headDim ?? 16;
  const H = options.hiddenSize ?? nHead * headDim;
  const QD = nHead * headDim;
  const L = options.numLayers ?? 4;
  const I = options.intermediateSize ?? 96;
  const scale = options.scale ?? 1;
  const tied = options.tieWordEmbeddings ?? false;
  const qwen2 = options.modelType === "qwen2";
  const qwen3 = options.modelType === "qwen3";
  /** q/k/v biases (always for Qwen2; with attention_bias also on o_proj for Llama and Qwen3). */
  const bias = qwen2 || (options.attentionBias ?? false);
  const oBias = !qwen2 && bias;
  const specials = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
  ];
  const llamaTok = qwen3 ? undefined : buildTokenizer({
    specialsFirst: false,
    specials,
    bosPrepend: "<|begin_of_text|>",
  });
  const qwenTok = qwen3 ? qwenTokenizerFiles() : undefined;
  const vocab = Math.ceil((llamaTok ?? qwenTok)!.size / 16) * 16;
  const id = (t: string) => (llamaTok ?? qwenTok)!.ids.get(t)!;
  const bos = qwen3 ? id("<|endoftext|>") : id("<|begin_of_text|>");
  const eos = qwen3 ? id("<|im_end|>") : id("<|end_of_text|>");
  const eot = qwen3 ? id("<|endoftext|>") : id("<|eot_id|>");
  const config: Record<string, unknown> = {
    architectures: [qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM"],
    model_type: options.modelType ?? "llama",
    vocab_size: vocab,
    hidden_size: H,
    intermediate_size: I,
    num_hidden_layers: L,
    num_attention_heads: nHead,
    num_key_value_heads: nKv,
    head_dim: headDim,
    hidden_act: "silu",
    max_position_embeddings: qwen3 ? 40960 : 4096,
    rms_norm_eps: qwen3 ? 1e-6 : 1e-5,
    rope_theta: options.ropeTheta ?? (qwen3 ? 1_000_000 : 10000),
    rope_scaling: options.ropeScaling === undefined
      ? (qwen3 ? null : {
        rope_type: "llama3",
        factor: 4.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 32,
      })
      : options.ropeScaling,
    ...(qwen2 ? {} : { attention_bias: bias }),
    ...(qwen3
      ? { use_sliding_window: false, sliding_window: null, max_window_layers: L }
      : { mlp_bias: false }),
    tie_word_embeddings: tied,
    bos_token_id: bos,
    eos_token_id: qwen3 ? eos : [eos, eot],
    torch_dtype: "bfloat16",
    transformers_version: qwen3 ? "4.51.0" : "4.44.0",
  };
  const t: PendingTensor[] = [];
  const w = (fanIn: number) => scale / Math.sqrt(fanIn);
  t.push({
    name: "model.embed_tokens.weight",
    shape: [vocab, H],
    values: randTensor(rng, [vocab, H], 1),
    block: -1,
  });
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.`;
    const add = (n: string, shape: number[], std: number, mean = 0) =>
      t.push({ name: p + n, shape, values: randTensor(rng, shape, std, mean), block: i });
    add("input_layernorm.weight", [H], 0.1, 1);
    add("self_attn.q_proj.weight", [QD, H], w(H));
    add("self_attn.k_proj.weight", [nKv * headDim, H], w(H));
    add("self_attn.v_proj.weight", [nKv * headDim, H], w(H));
    if (bias) {
      add("self_attn.q_proj.bias", [QD], 0.1);
      add("self_attn.k_proj.bias", [nKv * headDim], 0.1);
      add("self_attn.v_proj.bias", [nKv * headDim], 0.1);
    }
    if (qwen3) {
      // far from 1 so that a missing or misplaced q/k norm shows in the parity tests
      add("self_attn.q_norm.weight", [headDim], 0.5, 1);
      add("self_attn.k_norm.weight", [headDim], 0.5, 1);
    }
    add("self_attn.o_proj.weight", [H, QD], w(QD));
    if (oBias) add("self_attn.o_proj.bias", [H], 0.1);
    add("post_attention_layernorm.weight", [H], 0.1, 1);
    add("mlp.gate_proj.weight", [I, H], w(H));
    add("mlp.up_proj.weight", [I, H], w(H));
    add("mlp.down_proj.weight", [H, I], w(I));
  }
  t.push({ name: "model.norm.weight", shape: [H], values: randTensor(rng, [H], 0.1, 1), block: -1 });
  if (!tied) {
    t.push({
      name: "lm_head.weight",
      shape: [vocab, H],
      values: randTensor(rng, [vocab, H], w(H)),
      block: -1,
    });
  }
  const extra = qwenTok
    ? {
      "tokenizer.json": qwenTok.tokenizerJson,
      "tokenizer_config.json": qwenTok.tokenizerConfig,
      "generation_config.json": qwenTok.generationConfig,
    }
    : {
      "tokenizer.json": llamaTok!.json,
      "tokenizer_config.json": {
        bos_token: "<|begin_of_text|>",
        eos_token: "<|eot_id|>",
        clean_up_tokenization_spaces: true,
        model_max_length: 131072,
        tokenizer_class: "PreTrainedTokenizerFast",
        chat_template: LLAMA3_CHAT_TEMPLATE,
      },
      "generation_config.json": {
        bos_token_id: bos,
        eos_token_id: [eos, eot],
        do_sample: true,
        temperature: 0.6,
        top_p: 0.9,
      },
    };
  return await writeCheckpoint(
    dir,
    config,
    t,
    options.dtype ?? "BF16",
    options.shards ?? 2,
    L,
    extra,
    (i) => `model.layers.${i}.`,
  );
}

// ---------------------------------------------------------------- Qwen3

export type Qwen3FixtureOptions = Omit<LlamaFixtureOptions, "modelType">;

/**
 * A tiny Qwen3 checkpoint (qwen3-32b's layout: BF16, q/k norms, GQA, rope_theta 1e6, no rope
 * scaling, Qwen's tokenizer and chat template). By default hidden 48 with 4 query heads and 2 KV
 * heads of head_dim 16 (so head_dim ≠ hidden / heads, as in Qwen3-0.6B), untied, 2 shards.
 */
export function makeQwen3Checkpoint(options: Qwen3FixtureOptions = {}): Promise<Checkpoint> {
  return makeLlamaCheckpoint({
    seed: 3,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    hiddenSize: 48,
    intermediateSize: 80,
    ...options,
    modelType: "qwen3",
  });
}
