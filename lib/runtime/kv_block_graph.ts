/**
 * The ONNX graphs of one transformer block (BLOOM or Llama family), split in three so that one
 * weight pass serves the steps of many inference sessions at once (docs/architecture.md,
 * "Continuous batching"), and joined again into one (`block`) for a step that runs alone:
 *
 *   proj  hidden [R, S, H] → qkv [R, S, (N + 2·KVH)·d]: the norm and the q|k|v projection. Position-
 *         wise, so the rows of every session of a batch run through it stacked.
 *   attn  qkv [B, S, ·]; past_key, past_value [B, KVH, L, D] (L: the session's maxLength);
 *         seqlens_k int32 [B] (past + S − 1 per row); total_length int32 scalar (past + S);
 *         Llama: cos_cache, sin_cache [maxPositions, D/2]; BLOOM: attention_bias [1, N, S, total]
 *         → attn [B, S, N·d]; present_key, present_value — bound to the same buffers as
 *         past_key / past_value, so onnxruntime's GroupQueryAttention writes the S new rows at
 *         positions past..past+S−1 and reads the past where it lies: nothing proportional to
 *         the context is copied. Run once per session, on its own caches.
 *   out   hidden, attn → hidden_out [R, S, H]: o-projection, residual, norm, MLP, residual.
 *         Position-wise again, all rows stacked.
 *
 * Attention is com.microsoft.GroupQueryAttention on packed q|k|v: RoPE inside it for Llama (from
 * the cos/sin tables, positions from seqlens_k), ALiBi for BLOOM as its `attention_bias`
 * (`alibiBias`, computed by the engine once per step for all the span's blocks).
 *
 * `cache: "float16"` stores K/V as float16 (half the bytes a decode step reads); the attention
 * then runs on float16 q/k/v and its output is cast back to float32.
 * @module
 */
import type { BloomConfig, LlamaConfig, ModelConfig } from "./model_config.ts";
import { ropeInvFreq } from "./model_config.ts";
import { type BlockTensors, linear, need, needRows } from "./block_graph.ts";
import { concatRows, pickRows } from "./weight_rows.ts";
import { attr, DataType, OnnxGraph } from "./onnx_graph.ts";
import type { WeightFormat } from "./types.ts";

/** Element type of the KV cache buffers. */
export type KvCacheType = "float32" | "float16";

/**
 * A block's three graphs (see the module comment), and `block`: the three joined into one graph
 * (hidden, the attention inputs after qkv → hidden_out, present_key, present_value) for a step that
 * runs alone — one run, one wake of a pool, instead of three. It holds the same weight arrays.
 */
export interface KvBlockGraphs {
  proj: OnnxGraph;
  attn: OnnxGraph;
  out: OnnxGraph;
  block: OnnxGraph;
}

/** Input and output names of the three graphs, in the order `run` takes them. */
export function kvBlockIo(
  cfg: ModelConfig,
): Record<keyof KvBlockGraphs, { inputs: string[]; outputs: string[] }> {
  const base = ["qkv", "past_key", "past_value", "seqlens_k", "total_length"];
  return {
    proj: { inputs: ["hidden"], outputs: ["qkv"] },
    attn: {
      inputs: cfg.modelType === "llama" ? [...base, "cos_cache", "sin_cache"] : [...base, "attention_bias"],
      outputs: ["attn", "present_key", "present_value"],
    },
    out: { inputs: ["hidden", "attn"], outputs: ["hidden_out"] },
    block: {
      inputs: [
        "hidden",
        ...(cfg.modelType === "llama" ? [...base, "cos_cache", "sin_cache"] : [...base, "attention_bias"])
          .slice(1),
      ],
      outputs: ["hidden_out", "present_key", "present_value"],
    },
  };
}

/** What `joinBlock` puts before the names of each graph's own values and weights in the joined graph. */
export const JOINED_PREFIX = { proj: "p/", attn: "a/", out: "o/" } as const;

/**
 * Joins a block's three graphs into `gs.block` (declared by `declareIo`): the names the graphs pass
 * between them (and the inputs and outputs) stay; every other name gets its graph's prefix.
 */
function joinBlock(cfg: ModelConfig, gs: KvBlockGraphs): KvBlockGraphs {
  const io = kvBlockIo(cfg);
  const keep = new Set([...io.attn.inputs, ...io.attn.outputs, "hidden", "hidden_out"]);
  for (const part of ["proj", "attn", "out"] as const) {
    gs.block.embed(gs[part], (n) => keep.has(n) ? n : JOINED_PREFIX[part] + n);
  }
  return gs;
}

/** Width of the packed q|k|v rows the projection graph writes (heads unpadded). */
export function qkvWidth(cfg: ModelConfig): number {
  return (cfg.numHeads + 2 * cfg.numKvHeads) * cfg.headDim;
}

const MS = "com.microsoft";

/** The three graphs with their inputs and outputs declared. */
function declareIo(cfg: ModelConfig, cache: KvCacheType, stem: string): KvBlockGraphs {
  const H = cfg.hiddenSize, KVH = cfg.numKvHeads, D = cacheHeadDim(cfg), A = cfg.numHeads * cfg.headDim;
  const ct = cache === "float16" ? DataType.FLOAT16 : DataType.FLOAT;
  const proj = new OnnxGraph(`${stem}_proj`), attn = new OnnxGraph(`${stem}_attn`);
  const out = new OnnxGraph(`${stem}_out`), block = new OnnxGraph(`${stem}_block`);
  proj.input("hidden", DataType.FLOAT, ["R", "S", H]);
  proj.output("qkv", DataType.FLOAT, ["R", "S", qkvWidth(cfg)]);
  block.input("hidden", DataType.FLOAT, ["B", "S", H]);
  attn.input("qkv", DataType.FLOAT, ["B", "S", qkvWidth(cfg)]);
  for (const g of [attn, block]) {
    g.input("past_key", ct, ["B", KVH, "L", D]);
    g.input("past_value", ct, ["B", KVH, "L", D]);
    g.input("seqlens_k", DataType.INT32, ["B"]);
    g.input("total_length", DataType.INT32, []);
    if (cfg.modelType === "llama") {
      g.input("cos_cache", ct, ["P", cfg.headDim / 2]);
      g.input("sin_cache", ct, ["P", cfg.headDim / 2]);
    } else {
      // one row for every sequence, or one row per sequence (a batch of slab sessions, kv_slab.ts)
      g.input("attention_bias", DataType.FLOAT, ["Bb", cfg.numHeads, "S", "T"]);
    }
  }
  attn.output("attn", DataType.FLOAT, ["B", "S", A]);
  block.output("hidden_out", DataType.FLOAT, ["B", "S", H]);
  for (const g of [attn, block]) {
    g.output("present_key", ct, ["B", KVH, "L", D]);
    g.output("present_value", ct, ["B", KVH, "L", D]);
  }
  out.input("hidden", DataType.FLOAT, ["R", "S", H]);
  out.input("attn", DataType.FLOAT, ["R", "S", A]);
  out.output("hidden_out", DataType.FLOAT, ["R", "S", H]);
  return { proj, attn, out, block };
}

/**
 * GroupQueryAttention on packed q|k|v `[B, S, (N + 2·KVH)·D]` float32 (or q, k, v apart: `qkv` a
 * triple); returns `[B, S, N·D]` float32.
 */
function attention(
  g: OnnxGraph,
  cfg: ModelConfig,
  qkv: string | readonly [string, string, string],
  cache: KvCacheType,
  extra: { cos?: string; sin?: string; bias?: string },
): string {
  const half = cache === "float16";
  const cast = (x: string) => half ? g.op("Cast", [x], { to: attr.i(DataType.FLOAT16) }) : x;
  const rotary = extra.cos !== undefined;
  const d = cfg.headDim, dp = cacheHeadDim(cfg), n = cfg.numHeads, nkv = cfg.numKvHeads;
  if (dp !== d) {
    // GroupQueryAttention takes head sizes that are multiples of 8 only: zero-pad every head (q·k and
    // the weights over v are unchanged; the padded output columns are zeros) and cut the output back.
    const parts = typeof qkv === "string"
      ? g.node("Split", [qkv, g.i64([n * d, nkv * d, nkv * d])], 3, { axis: attr.i(-1) })
      : [...qkv];
    const pad = (x: string, heads: number) =>
      g.op("Reshape", [
        g.op("Pad", [g.op("Reshape", [x, g.i64([0, 0, heads, d])]), g.i64([0, 0, 0, 0, 0, 0, 0, dp - d])]),
        g.i64([0, 0, heads * dp]),
      ]);
    qkv = [pad(parts[0], n), pad(parts[1], nkv), pad(parts[2], nkv)];
  }
  const [q, k, v] = typeof qkv === "string" ? [cast(qkv), "", ""] : qkv.map(cast);
  const [out] = g.node(
    "GroupQueryAttention",
    [
      q,
      k,
      v,
      "past_key",
      "past_value",
      "seqlens_k",
      "total_length",
      extra.cos ?? "",
      extra.sin ?? "",
      "",
      extra.bias ? cast(extra.bias) : "",
    ],
    [g.fresh("attn"), "present_key", "present_value"],
    {
      num_heads: attr.i(cfg.numHeads),
      kv_num_heads: attr.i(cfg.numKvHeads),
      scale: attr.f(1 / Math.sqrt(cfg.headDim)),
      ...(rotary ? { do_rotary: attr.i(1), rotary_interleaved: attr.i(0) } : {}),
    },
    MS,
  );
  const out32 = half ? g.op("Cast", [out], { to: attr.i(DataType.FLOAT) }) : out;
  if (dp === d) return out32;
  const heads = g.op("Reshape", [out32, g.i64([0, 0, n, dp])]);
  const cut = g.op("Slice", [heads, g.i64([0]), g.i64([d]), g.i64([-1])]);
  return g.op("Reshape", [cut, g.i64([0, 0, n * d])]);
}

/** Head size of the KV cache: `head_dim` rounded up to a multiple of 8 (what GroupQueryAttention takes). */
export function cacheHeadDim(cfg: ModelConfig): number {
  return Math.ceil(cfg.headDim / 8) * 8;
}

/**
 * RoPE in the graph (rotate-half, positions total − S … total − 1 of every row), for head sizes that
 * GroupQueryAttention cannot rotate itself (see `attention`): x [B, S, heads·d].
 */
function ropeInGraph(g: OnnxGraph, x: string, heads: number, d: number, half: boolean): string {
  const i64 = (v: string) => g.op("Cast", [v], { to: attr.i(DataType.INT64) });
  const total = i64("total_length");
  const s = g.op("Gather", [g.op("Shape", ["qkv"]), g.i64([1], [])], { axis: attr.i(0) });
  const qpos = g.op("Range", [g.op("Sub", [total, s]), total, g.i64([1], [])]); // [S]
  const table = (name: string) => {
    const rows = g.op("Gather", [name, qpos], { axis: attr.i(0) }); // [S, d/2]
    const f = half ? g.op("Cast", [rows], { to: attr.i(DataType.FLOAT) }) : rows;
    return g.op("Reshape", [f, g.i64([1, -1, 1, d / 2])]);
  };
  const cos = table("cos_cache"), sin = table("sin_cache");
  const x4 = g.op("Reshape", [x, g.i64([0, 0, heads, d])]);
  const [x1, x2] = g.node("Split", [x4, g.i64([d / 2, d / 2])], 2, { axis: attr.i(-1) });
  const r1 = g.op("Sub", [g.op("Mul", [x1, cos]), g.op("Mul", [x2, sin])]);
  const r2 = g.op("Add", [g.op("Mul", [x2, cos]), g.op("Mul", [x1, sin])]);
  return g.op("Reshape", [g.op("Concat", [r1, r2], { axis: attr.i(-1) }), g.i64([0, 0, heads * d])]);
}

/**
 * BLOOM's ALiBi as GroupQueryAttention's `attention_bias` `[1, N, S, total]`: slope_h × (key
 * position − query position), the S query positions being total − S … total − 1. Softmax ignores a
 * per-query shift, so this equals transformers' slope × key position; relative positions keep the
 * values near the diagonal small and exact. The engine computes it once per step for every block of
 * the span (`out`: a buffer of at least N·S·total values to reuse).
 */
export function alibiBias(slopes: Float32Array, s: number, total: number, out?: Float32Array): Float32Array {
  const n = slopes.length;
  const bias = out && out.length >= n * s * total
    ? out.subarray(0, n * s * total)
    : new Float32Array(n * s * total);
  // Row i of head h is slope × (j − (total − s + i)) for j in [0, total): the same line shifted by
  // one per row, so every row is a slice of one line of total + s − 1 values.
  const line = new Float32Array(total + s - 1);
  for (let h = 0; h < n; h++) {
    const m = slopes[h];
    for (let k = 0; k < line.length; k++) line[k] = m * (k - (total - 1));
    for (let i = 0; i < s; i++) bias.set(line.subarray(s - 1 - i, s - 1 - i + total), (h * s + i) * total);
  }
  return bias;
}

/** The BLOOM block's three graphs. */
export function buildBloomKvBlock(
  cfg: BloomConfig,
  t: BlockTensors,
  format: WeightFormat,
  cache: KvCacheType,
): KvBlockGraphs {
  const H = cfg.hiddenSize, n = cfg.numHeads, d = cfg.headDim;
  const gs = declareIo(cfg, cache, "bloom");
  const ln = (g: OnnxGraph, x: string, name: string) =>
    g.op("LayerNormalization", [
      x,
      g.initializer(`${name}_w`, need(t, `${name}.weight`, [H]), [H]),
      g.initializer(`${name}_b`, need(t, `${name}.bias`, [H]), [H]),
    ], { axis: attr.i(-1), epsilon: attr.f(cfg.eps) });
  // Fused QKV rows are grouped per head ([h][q|k|v][d]); reorder to [q heads | k heads | v heads].
  const qkvB = need(t, "self_attention.query_key_value.bias", [3 * H]);
  const order = new Array<number>(3 * H), b2 = new Float32Array(qkvB.length);
  for (let h = 0; h < n; h++) {
    for (let part = 0; part < 3; part++) {
      for (let j = 0; j < d; j++) {
        const src = h * 3 * d + part * d + j, dst = part * H + h * d + j;
        order[dst] = src;
        b2[dst] = qkvB[src];
      }
    }
  }
  const w2 = pickRows(needRows(t, "self_attention.query_key_value.weight", [3 * H, H]), order);
  const { proj, attn, out: g } = gs;
  proj.node("Identity", [
    linear(proj, ln(proj, "hidden", "input_layernorm"), w2, 3 * H, H, b2, format, "qkv"),
  ], [
    "qkv",
  ]);
  attn.node("Identity", [attention(attn, cfg, "qkv", cache, { bias: "attention_bias" })], ["attn"]);
  const x = "hidden";
  const dense = linear(
    g,
    "attn",
    needRows(t, "self_attention.dense.weight", [H, H]),
    H,
    H,
    need(t, "self_attention.dense.bias", [H]),
    format,
    "dense",
  );
  const a = g.op("Add", [x, dense]);
  const up = linear(
    g,
    ln(g, a, "post_attention_layernorm"),
    needRows(t, "mlp.dense_h_to_4h.weight", [4 * H, H]),
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
    needRows(t, "mlp.dense_4h_to_h.weight", [H, 4 * H]),
    H,
    4 * H,
    need(t, "mlp.dense_4h_to_h.bias", [H]),
    format,
    "4h_to_h",
  );
  g.node("Add", [a, down], ["hidden_out"]);
  return gs;
}

// ---- qwen3 q/k-norm step (model_type "qwen3"; cfg.qkNorm) ------------------------------------
/**
 * Qwen3's RMSNorm over head_dim on every head of x [B, S, heads·d] (weight `self_attn.{q,k}_norm`,
 * shape [d], eps = rms_norm_eps), applied after the projection and before RoPE (which GQA applies).
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

/** The Llama-family block's three graphs (GQA heads, RoPE with scaling, optional q/k/v/o biases, Qwen3's q/k norm). */
export function buildLlamaKvBlock(
  cfg: LlamaConfig,
  t: BlockTensors,
  format: WeightFormat,
  cache: KvCacheType,
): KvBlockGraphs {
  const H = cfg.hiddenSize, n = cfg.numHeads, nkv = cfg.numKvHeads, d = cfg.headDim, I = cfg.intermediateSize;
  const QD = n * d, KV = nkv * d;
  const gs = declareIo(cfg, cache, "llama");
  const rms = (g: OnnxGraph, x: string, name: string) =>
    g.op(
      "SimplifiedLayerNormalization",
      [x, g.initializer(`${name}_w`, need(t, `${name}.weight`, [H]), [H])],
      { axis: attr.i(-1), epsilon: attr.f(cfg.eps) },
    );
  const qkvW = concatRows([
    needRows(t, "self_attn.q_proj.weight", [QD, H]),
    needRows(t, "self_attn.k_proj.weight", [KV, H]),
    needRows(t, "self_attn.v_proj.weight", [KV, H]),
  ]);
  let qkvB: Float32Array | undefined;
  if (cfg.qkvBias) {
    qkvB = new Float32Array(QD + 2 * KV);
    qkvB.set(need(t, "self_attn.q_proj.bias", [QD]), 0);
    qkvB.set(need(t, "self_attn.k_proj.bias", [KV]), QD);
    qkvB.set(need(t, "self_attn.v_proj.bias", [KV]), QD + KV);
  }
  const { proj, attn: ag, out: g } = gs;
  proj.node("Identity", [
    linear(proj, rms(proj, "hidden", "input_layernorm"), qkvW, QD + 2 * KV, H, qkvB, format, "qkv"),
  ], [
    "qkv",
  ]);
  let heads: string | [string, string, string] = "qkv";
  const padded = cacheHeadDim(cfg) !== d;
  if (cfg.qkNorm || padded) {
    const [q0, k0, v] = ag.node("Split", ["qkv", ag.i64([QD, KV, KV])], 3, { axis: attr.i(-1) });
    let q = cfg.qkNorm ? qkNorm(ag, q0, n, d, t, "q", cfg.eps) : q0;
    let k = cfg.qkNorm ? qkNorm(ag, k0, nkv, d, t, "k", cfg.eps) : k0;
    if (padded) {
      q = ropeInGraph(ag, q, n, d, cache === "float16");
      k = ropeInGraph(ag, k, nkv, d, cache === "float16");
    }
    heads = [q, k, v];
  }
  ag.node("Identity", [
    attention(ag, cfg, heads, cache, padded ? {} : { cos: "cos_cache", sin: "sin_cache" }),
  ], [
    "attn",
  ]);
  const x = "hidden";
  const o = linear(
    g,
    "attn",
    needRows(t, "self_attn.o_proj.weight", [H, QD]),
    H,
    QD,
    cfg.oBias ? need(t, "self_attn.o_proj.bias", [H]) : undefined,
    format,
    "o_proj",
  );
  const hres = g.op("Add", [x, o]);
  const guW = concatRows([
    needRows(t, "mlp.gate_proj.weight", [I, H]),
    needRows(t, "mlp.up_proj.weight", [I, H]),
  ]);
  const gu = linear(g, rms(g, hres, "post_attention_layernorm"), guW, 2 * I, H, undefined, format, "gate_up");
  const [gate, up] = g.node("Split", [gu, g.i64([I, I])], 2, { axis: attr.i(-1) });
  const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), up]);
  const down = linear(g, act, needRows(t, "mlp.down_proj.weight", [H, I]), H, I, undefined, format, "down");
  g.node("Add", [hres, down], ["hidden_out"]);
  return gs;
}

/** The three graphs of a block of any supported config. */
export function buildKvBlockGraph(
  cfg: ModelConfig,
  t: BlockTensors,
  format: WeightFormat,
  cache: KvCacheType,
): KvBlockGraphs {
  return joinBlock(
    cfg,
    cfg.modelType === "bloom"
      ? buildBloomKvBlock(cfg, t, format, cache)
      : buildLlamaKvBlock(cfg, t, format, cache),
  );
}

/**
 * RoPE tables `[positions, D/2]` (cos, sin) from the config's scaled inverse frequencies,
 * computed in float64 and rounded once: what GroupQueryAttention's `cos_cache`/`sin_cache` take.
 */
export function ropeTables(cfg: LlamaConfig, positions: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(cfg);
  const h = inv.length;
  const cos = new Float32Array(positions * h), sin = new Float32Array(positions * h);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < h; i++) {
      const a = p * inv[i];
      cos[p * h + i] = Math.cos(a);
      sin[p * h + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

/** float32 → IEEE float16 bits, round to nearest even. */
export function toFloat16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i];
    const x = u[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1), halfway = 1 << (shift - 1);
      if (rem > halfway || (rem === halfway && (h & 1))) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
    out[i] = sign | h;
  }
  return out;
}
