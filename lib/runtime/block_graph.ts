/**
 * Builds the ONNX graph of one transformer block (BLOOM or Llama family, Qwen3 included) from its
 * tensors.
 *
 * Every block graph has the same interface:
 *   inputs  hidden [B, T, H], past_key [B, P, KV], past_value [B, P, KV]   (P may be 0)
 *   outputs hidden_out [B, T, H], key [B, T, KV], value [B, T, KV]        (only the new K/V)
 * where KV = num_key_value_heads × head_dim, positions are P..P+T-1, and the caller appends the
 * new K/V to its cache. Llama keys are stored after RoPE, as transformers does.
 *
 * Weight formats: fp32 (MatMul on the transposed weight) or int8 (per-output-channel symmetric
 * weights quantized here, com.microsoft.DynamicQuantizeMatMul).
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { BloomConfig, LlamaConfig, ModelConfig } from "./model_config.ts";
import { ropeInvFreq } from "./model_config.ts";
import { attr, DataType, OnnxGraph } from "./onnx_graph.ts";
import type { WeightFormat } from "./types.ts";

/** A block's tensors by name with the block prefix stripped (e.g. `self_attn.q_proj.weight`). */
export type BlockTensors = ReadonlyMap<
  string,
  { readonly shape: readonly number[]; readonly data: Float32Array }
>;

export const BLOCK_INPUTS = ["hidden", "past_key", "past_value"] as const;
export const BLOCK_OUTPUTS = ["hidden_out", "key", "value"] as const;

const MS = "com.microsoft";
const F32_MIN = -3.4028234663852886e38;

export function need(t: BlockTensors, name: string, shape: readonly number[]): Float32Array {
  const x = t.get(name);
  if (!x) {
    throw new RuntimeError("BAD_CHECKPOINT", `block tensor ${name} is missing`, {
      hint: "the checkpoint does not match its config.json",
      details: { name },
    });
  }
  if (x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) {
    throw new RuntimeError(
      "BAD_CHECKPOINT",
      `block tensor ${name} has shape [${x.shape}] but the config implies [${shape}]`,
      {
        hint: "the checkpoint does not match its config.json",
        details: { name, shape: x.shape, expected: shape },
      },
    );
  }
  return x.data;
}

/** [out, in] row-major → [in, out] row-major. */
export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c];
  }
  return out;
}

/** Per-output-channel symmetric int8 quantization of a [out, in] weight → q [in, out], scales [out]. */
export function quantizeInt8(
  w: Float32Array,
  rows: number,
  cols: number,
): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(w.length);
  const scale = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[base + c]));
    const s = m > 0 ? m / 127 : 1;
    scale[r] = s;
    for (let c = 0; c < cols; c++) {
      q[c * rows + r] = Math.max(-127, Math.min(127, Math.round(w[base + c] / s)));
    }
  }
  return { q, scale };
}

/** x [.., in] · Wᵀ (+ b) for a [out, in] weight. */
export function linear(
  g: OnnxGraph,
  x: string,
  w: Float32Array,
  out: number,
  inp: number,
  bias: Float32Array | undefined,
  format: WeightFormat,
  stem: string,
): string {
  if (format === "int8") {
    const { q, scale } = quantizeInt8(w, out, inp);
    const qn = g.initializer(`${stem}_q`, q, [inp, out]);
    const sn = g.initializer(`${stem}_scale`, scale, [out]);
    const inputs = [x, qn, sn, ""];
    if (bias) inputs.push(g.initializer(`${stem}_bias`, bias, [out]));
    else inputs.pop();
    return g.op("DynamicQuantizeMatMul", inputs, {}, MS);
  }
  const y = g.op("MatMul", [x, g.initializer(`${stem}_w`, transpose2d(w, out, inp), [inp, out])]);
  return bias ? g.op("Add", [y, g.initializer(`${stem}_b`, bias, [out])]) : y;
}

/** Scalar int64 value `i` of a shape. */
function dim(g: OnnxGraph, x: string, i: number): string {
  return g.op("Gather", [g.op("Shape", [x]), g.i64([i], [])], { axis: attr.i(0) });
}

/** Past length P, total P+T as scalars, and key positions [P+T] / query positions [T] (int64). */
function positions(g: OnnxGraph, hidden: string, pastKey: string) {
  const t = dim(g, hidden, 1);
  const p = dim(g, pastKey, 1);
  const total = g.op("Add", [p, t]);
  const one = g.i64([1], []);
  const kpos = g.op("Range", [g.i64([0], []), total, one]);
  const qpos = g.op("Range", [p, total, one]);
  return { t, p, total, kpos, qpos };
}

/** Causal mask [T, P+T] aligned to the end: 0 where key ≤ query position, float32 min elsewhere. */
function causalMask(g: OnnxGraph, kpos: string, qpos: string): string {
  const future = g.op("Greater", [
    g.op("Unsqueeze", [kpos, g.i64([0])]),
    g.op("Unsqueeze", [qpos, g.i64([1])]),
  ]);
  return g.op("Where", [future, g.f32([F32_MIN]), g.f32([0])]);
}

/** ALiBi slopes of BLOOM (transformers' build_alibi_tensor). */
export function alibiSlopes(n: number): Float64Array {
  const p = 2 ** Math.floor(Math.log2(n));
  const base = 2 ** (-(2 ** -(Math.log2(p) - 3)));
  const out = new Float64Array(n);
  for (let k = 1; k <= p; k++) out[k - 1] = base ** k;
  if (p !== n) {
    const extraBase = 2 ** (-(2 ** -(Math.log2(2 * p) - 3)));
    const extra = Math.min(p, n - p);
    for (let i = 0; i < extra; i++) out[p + i] = extraBase ** (1 + 2 * i);
  }
  return out;
}

function declareIo(g: OnnxGraph, H: number, KV: number): void {
  g.input("hidden", DataType.FLOAT, ["B", "T", H]);
  g.input("past_key", DataType.FLOAT, ["B", "P", KV]);
  g.input("past_value", DataType.FLOAT, ["B", "P", KV]);
  g.output("hidden_out", DataType.FLOAT, ["B", "T", H]);
  g.output("key", DataType.FLOAT, ["B", "T", KV]);
  g.output("value", DataType.FLOAT, ["B", "T", KV]);
}

/** The BLOOM block graph. */
export function buildBloomBlock(cfg: BloomConfig, t: BlockTensors, format: WeightFormat): OnnxGraph {
  const H = cfg.hiddenSize, n = cfg.numHeads, d = cfg.headDim;
  const g = new OnnxGraph("bloom_block");
  declareIo(g, H, H);
  const ln = (x: string, name: string) =>
    g.op("LayerNormalization", [
      x,
      g.initializer(`${name}_w`, need(t, `${name}.weight`, [H]), [H]),
      g.initializer(`${name}_b`, need(t, `${name}.bias`, [H]), [H]),
    ], {
      axis: attr.i(-1),
      epsilon: attr.f(cfg.eps),
    });
  // Fused QKV rows are grouped per head ([h][q|k|v][d]); reorder to [q heads | k heads | v heads].
  const qkvW = need(t, "self_attention.query_key_value.weight", [3 * H, H]);
  const qkvB = need(t, "self_attention.query_key_value.bias", [3 * H]);
  const w2 = new Float32Array(qkvW.length), b2 = new Float32Array(qkvB.length);
  for (let h = 0; h < n; h++) {
    for (let part = 0; part < 3; part++) {
      for (let j = 0; j < d; j++) {
        const src = h * 3 * d + part * d + j, dst = part * H + h * d + j;
        w2.set(qkvW.subarray(src * H, (src + 1) * H), dst * H);
        b2[dst] = qkvB[src];
      }
    }
  }
  const x = "hidden";
  const h1 = ln(x, "input_layernorm");
  const qkv = linear(g, h1, w2, 3 * H, H, b2, format, "qkv");
  const [q, k, v] = g.node("Split", [qkv, g.i64([H, H, H])], 3, { axis: attr.i(-1) });
  g.node("Identity", [k], ["key"]);
  g.node("Identity", [v], ["value"]);
  const K = g.op("Concat", ["past_key", k], { axis: attr.i(1) });
  const V = g.op("Concat", ["past_value", v], { axis: attr.i(1) });
  const { kpos, qpos } = positions(g, x, "past_key");
  const slopes = g.initializer("alibi_slopes", Float32Array.from(alibiSlopes(n)), [n, 1, 1]);
  const alibi = g.op("Mul", [slopes, g.op("Cast", [kpos], { to: attr.i(DataType.FLOAT) })]); // [n,1,total]
  const bias = g.op("Unsqueeze", [g.op("Add", [alibi, causalMask(g, kpos, qpos)]), g.i64([0])]); // [1,n,T,total]
  const attn = g.op("MultiHeadAttention", [q, K, V, "", "", bias], {
    num_heads: attr.i(n),
    scale: attr.f(1 / Math.sqrt(d)),
  }, MS);
  const dense = linear(
    g,
    attn,
    need(t, "self_attention.dense.weight", [H, H]),
    H,
    H,
    need(t, "self_attention.dense.bias", [H]),
    format,
    "dense",
  );
  const a = g.op("Add", [x, dense]);
  const h2 = ln(a, "post_attention_layernorm");
  const up = linear(
    g,
    h2,
    need(t, "mlp.dense_h_to_4h.weight", [4 * H, H]),
    4 * H,
    H,
    need(t, "mlp.dense_h_to_4h.bias", [4 * H]),
    format,
    "h_to_4h",
  );
  const act = g.op("Gelu", [up], { approximate: attr.s("tanh") });
  const down = linear(
    g,
    act,
    need(t, "mlp.dense_4h_to_h.weight", [H, 4 * H]),
    H,
    4 * H,
    need(t, "mlp.dense_4h_to_h.bias", [H]),
    format,
    "4h_to_h",
  );
  g.node("Add", [a, down], ["hidden_out"]);
  return g;
}

/** Rotate-half RoPE on x [B, T, heads·d] with cos/sin [1, T, 1, d/2]. */
function rope(g: OnnxGraph, x: string, heads: number, d: number, cos: string, sin: string): string {
  const x4 = g.op("Reshape", [x, g.i64([0, 0, heads, d])]);
  const [x1, x2] = g.node("Split", [x4, g.i64([d / 2, d / 2])], 2, { axis: attr.i(-1) });
  const r1 = g.op("Sub", [g.op("Mul", [x1, cos]), g.op("Mul", [x2, sin])]);
  const r2 = g.op("Add", [g.op("Mul", [x2, cos]), g.op("Mul", [x1, sin])]);
  return g.op("Reshape", [g.op("Concat", [r1, r2], { axis: attr.i(-1) }), g.i64([0, 0, heads * d])]);
}

// ---- qwen3 q/k-norm step (model_type "qwen3"; cfg.qkNorm) ------------------------------------
/**
 * Qwen3's RMSNorm over head_dim on every head of x [B, T, heads·d] (weight `self_attn.{q,k}_norm`,
 * shape [d], eps = rms_norm_eps), applied after the projection and before RoPE.
 */
function qkNorm(
  g: OnnxGraph,
  x: string,
  heads: number,
  d: number,
  t: BlockTensors,
  which: "q" | "k",
  eps: number,
): string {
  const w = g.initializer(`${which}_norm_w`, need(t, `self_attn.${which}_norm.weight`, [d]), [d]);
  const x4 = g.op("Reshape", [x, g.i64([0, 0, heads, d])]);
  const n4 = g.op("SimplifiedLayerNormalization", [x4, w], { axis: attr.i(-1), epsilon: attr.f(eps) });
  return g.op("Reshape", [n4, g.i64([0, 0, heads * d])]);
}
// ---- end of the qwen3 q/k-norm step ------------------------------------------------------------

/** The Llama-family block graph (GQA, RoPE with scaling, optional q/k/v/o biases, Qwen3's q/k norm). */
export function buildLlamaBlock(cfg: LlamaConfig, t: BlockTensors, format: WeightFormat): OnnxGraph {
  const H = cfg.hiddenSize, n = cfg.numHeads, nkv = cfg.numKvHeads, d = cfg.headDim, I = cfg.intermediateSize;
  const QD = n * d, KV = nkv * d, gsz = n / nkv;
  const g = new OnnxGraph("llama_block");
  declareIo(g, H, KV);
  const rms = (x: string, name: string) =>
    g.op(
      "SimplifiedLayerNormalization",
      [x, g.initializer(`${name}_w`, need(t, `${name}.weight`, [H]), [H])],
      {
        axis: attr.i(-1),
        epsilon: attr.f(cfg.eps),
      },
    );
  const x = "hidden";
  const h1 = rms(x, "input_layernorm");
  // Fused q|k|v projection.
  const qkvW = new Float32Array((QD + 2 * KV) * H);
  qkvW.set(need(t, "self_attn.q_proj.weight", [QD, H]), 0);
  qkvW.set(need(t, "self_attn.k_proj.weight", [KV, H]), QD * H);
  qkvW.set(need(t, "self_attn.v_proj.weight", [KV, H]), (QD + KV) * H);
  let qkvB: Float32Array | undefined;
  if (cfg.qkvBias) {
    qkvB = new Float32Array(QD + 2 * KV);
    qkvB.set(need(t, "self_attn.q_proj.bias", [QD]), 0);
    qkvB.set(need(t, "self_attn.k_proj.bias", [KV]), QD);
    qkvB.set(need(t, "self_attn.v_proj.bias", [KV]), QD + KV);
  }
  const qkv = linear(g, h1, qkvW, QD + 2 * KV, H, qkvB, format, "qkv");
  const [q0, k0, v] = g.node("Split", [qkv, g.i64([QD, KV, KV])], 3, { axis: attr.i(-1) });
  const q = cfg.qkNorm ? qkNorm(g, q0, n, d, t, "q", cfg.eps) : q0;
  const k = cfg.qkNorm ? qkNorm(g, k0, nkv, d, t, "k", cfg.eps) : k0;
  // RoPE at positions P..P+T-1.
  const { kpos, qpos } = positions(g, x, "past_key");
  const inv = g.initializer("inv_freq", Float32Array.from(ropeInvFreq(cfg)), [1, d / 2]);
  const freqs = g.op("Mul", [
    g.op("Unsqueeze", [g.op("Cast", [qpos], { to: attr.i(DataType.FLOAT) }), g.i64([1])]),
    inv,
  ]); // [T, d/2]
  const shape4 = g.i64([1, -1, 1, d / 2]);
  const cos = g.op("Reshape", [g.op("Cos", [freqs]), shape4]);
  const sin = g.op("Reshape", [g.op("Sin", [freqs]), shape4]);
  const qr = rope(g, q, n, d, cos, sin);
  const kr = rope(g, k, nkv, d, cos, sin);
  g.node("Identity", [kr], ["key"]);
  g.node("Identity", [v], ["value"]);
  const K = g.op("Concat", ["past_key", kr], { axis: attr.i(1) }); // [B, total, KV]
  const V = g.op("Concat", ["past_value", v], { axis: attr.i(1) });
  // Grouped attention with plain ops: query head h = kvHead·g + j.
  const q5 = g.op("Transpose", [g.op("Reshape", [qr, g.i64([0, 0, nkv, gsz, d])])], {
    perm: attr.ints([0, 2, 3, 1, 4]),
  }); // [B,nkv,g,T,d]
  const kT = g.op("Unsqueeze", [
    g.op("Transpose", [g.op("Reshape", [K, g.i64([0, 0, nkv, d])])], { perm: attr.ints([0, 2, 3, 1]) }),
    g.i64([2]),
  ]); // [B,nkv,1,d,total]
  const v5 = g.op("Unsqueeze", [
    g.op("Transpose", [g.op("Reshape", [V, g.i64([0, 0, nkv, d])])], { perm: attr.ints([0, 2, 1, 3]) }),
    g.i64([2]),
  ]); // [B,nkv,1,total,d]
  const scores = g.op("Add", [
    g.op("Mul", [g.op("MatMul", [q5, kT]), g.f32([1 / Math.sqrt(d)])]),
    causalMask(g, kpos, qpos),
  ]);
  const probs = g.op("Softmax", [scores], { axis: attr.i(-1) });
  const ctx = g.op("MatMul", [probs, v5]); // [B,nkv,g,T,d]
  const attn = g.op("Reshape", [
    g.op("Transpose", [ctx], { perm: attr.ints([0, 3, 1, 2, 4]) }),
    g.i64([0, 0, QD]),
  ]);
  const o = linear(
    g,
    attn,
    need(t, "self_attn.o_proj.weight", [H, QD]),
    H,
    QD,
    cfg.oBias ? need(t, "self_attn.o_proj.bias", [H]) : undefined,
    format,
    "o_proj",
  );
  const hres = g.op("Add", [x, o]);
  const h2 = rms(hres, "post_attention_layernorm");
  const guW = new Float32Array(2 * I * H);
  guW.set(need(t, "mlp.gate_proj.weight", [I, H]), 0);
  guW.set(need(t, "mlp.up_proj.weight", [I, H]), I * H);
  const gu = linear(g, h2, guW, 2 * I, H, undefined, format, "gate_up");
  const [gate, up] = g.node("Split", [gu, g.i64([I, I])], 2, { axis: attr.i(-1) });
  const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
  const down = linear(g, act, need(t, "mlp.down_proj.weight", [H, I]), H, I, undefined, format, "down");
  g.node("Add", [hres, down], ["hidden_out"]);
  return g;
}

/** Builds the block graph for any supported config. */
export function buildBlockGraph(cfg: ModelConfig, t: BlockTensors, format: WeightFormat): OnnxGraph {
  return cfg.modelType === "bloom" ? buildBloomBlock(cfg, t, format) : buildLlamaBlock(cfg, t, format);
}

/** Tensor names (without the block prefix) a block of this config needs. */
export function blockTensorNames(cfg: ModelConfig): string[] {
  if (cfg.modelType === "bloom") {
    return [
      "input_layernorm.weight",
      "input_layernorm.bias",
      "self_attention.query_key_value.weight",
      "self_attention.query_key_value.bias",
      "self_attention.dense.weight",
      "self_attention.dense.bias",
      "post_attention_layernorm.weight",
      "post_attention_layernorm.bias",
      "mlp.dense_h_to_4h.weight",
      "mlp.dense_h_to_4h.bias",
      "mlp.dense_4h_to_h.weight",
      "mlp.dense_4h_to_h.bias",
    ];
  }
  const names = [
    "input_layernorm.weight",
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
  ];
  if (cfg.qkvBias) names.push("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias");
  if (cfg.oBias) names.push("self_attn.o_proj.bias");
  if (cfg.qkNorm) names.push("self_attn.q_norm.weight", "self_attn.k_norm.weight");
  return names;
}
