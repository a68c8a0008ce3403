/**
 * What every block graph builder (kv_block_graph.ts) shares: the tensors a block of a config needs,
 * checked against the shapes the config implies, and the linear layers in each weight format —
 * fp32 (MatMul on the transposed weight) or int8 (per-output-channel symmetric weights quantized
 * here, com.microsoft.DynamicQuantizeMatMul) — plus BLOOM's ALiBi slopes.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { ModelConfig } from "./model_config.ts";
import type { OnnxGraph } from "./onnx_graph.ts";
import { storedBytes, type StoredTensor, toFloat32 } from "./safetensors.ts";
import type { WeightFormat } from "./types.ts";
import { type Rows, storedRows } from "./weight_rows.ts";

/**
 * A block's tensors by name with the block prefix stripped (e.g. `self_attn.q_proj.weight`), as
 * the checkpoint stores them: matrices are read a few rows at a time (weight_rows.ts).
 */
export type BlockTensors = ReadonlyMap<string, StoredTensor>;

const MS = "com.microsoft";

/** A block tensor in float32, checked against the shape the config implies (BAD_CHECKPOINT). */
export function need(t: BlockTensors, name: string, shape: readonly number[]): Float32Array {
  const x = stored(t, name, shape);
  return toFloat32(x.dtype, storedBytes(x), name);
}

/** A `[rows, cols]` block tensor, checked like `need`, read a few rows at a time. */
export function needRows(t: BlockTensors, name: string, shape: readonly [number, number]): Rows {
  return storedRows(stored(t, name, shape), shape[0], shape[1], name);
}

function stored(t: BlockTensors, name: string, shape: readonly number[]): StoredTensor {
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
  return x;
}

/**
 * Side of the square tiles the transposes below work in: a tile's reads and writes stay within a few
 * cache lines per row, where writing a whole column at a stride of `rows` missed the cache on every
 * element (a Qwen3-32B block's matrices took seconds).
 */
const TILE = 64;

/** [out, in] row-major → [in, out] row-major. */
export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  return transposeRows(arrayRows(w, rows, cols));
}

/** `transpose2d` of a matrix read `TILE` rows at a time. */
export function transposeRows(w: Rows): Float32Array {
  const { rows, cols } = w, out = new Float32Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE), tile = w.read(r0, r1);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) out[o + r] = tile[(r - r0) * cols + c];
      }
    }
  }
  return out;
}

/** A float32 matrix as `Rows` (views, no copy). */
export function arrayRows(w: Float32Array, rows: number, cols: number): Rows {
  return { rows, cols, read: (r0, r1) => w.subarray(r0 * cols, r1 * cols) };
}

/** Per-output-channel symmetric int8 quantization of a [out, in] weight → q [in, out], scales [out]. */
export function quantizeInt8(
  w: Float32Array,
  rows: number,
  cols: number,
): { q: Int8Array; scale: Float32Array } {
  return quantizeRows(arrayRows(w, rows, cols));
}

/**
 * `quantizeInt8` of a matrix read `TILE` rows at a time: the same result, without the whole
 * weight in float32 at once (a block's matrices and a real vocabulary's LM head, read from the file).
 */
export function quantizeRows(w: Rows): { q: Int8Array; scale: Float32Array } {
  const { rows, cols } = w, q = new Int8Array(rows * cols);
  // the divisors in float64, as computed (the stored scales are rounded to float32)
  const scale = new Float32Array(rows), div = new Float64Array(rows);
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE), tile = w.read(r0, r1);
    for (let r = r0; r < r1; r++) {
      let m = 0;
      const base = (r - r0) * cols;
      for (let c = 0; c < cols; c++) {
        const a = Math.abs(tile[base + c]);
        if (a > m) m = a;
      }
      const s = m > 0 ? m / 127 : 1;
      scale[r] = s;
      div[r] = s;
    }
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let c = c0; c < c1; c++) {
        const o = c * rows;
        for (let r = r0; r < r1; r++) {
          // Math.round's result (halves up) for |x| far below 2^52, without its cost
          const x = Math.floor(tile[(r - r0) * cols + c] / div[r] + 0.5);
          q[o + r] = x > 127 ? 127 : x < -127 ? -127 : x;
        }
      }
    }
  }
  return { q, scale };
}

/** x [.., in] · Wᵀ (+ b) for a [out, in] weight (an array, or read a few rows at a time). */
export function linear(
  g: OnnxGraph,
  x: string,
  w: Float32Array | Rows,
  out: number,
  inp: number,
  bias: Float32Array | undefined,
  format: WeightFormat,
  stem: string,
): string {
  const rows = w instanceof Float32Array ? arrayRows(w, out, inp) : w;
  if (rows.rows !== out || rows.cols !== inp) {
    throw new RangeError(`linear ${stem}: a [${rows.rows}, ${rows.cols}] weight for [${out}, ${inp}]`);
  }
  if (format === "int8") return linearInt8(g, x, quantizeRows(rows), out, inp, bias, stem);
  const y = g.op("MatMul", [x, g.initializer(`${stem}_w`, transposeRows(rows), [inp, out])]);
  return bias ? g.op("Add", [y, g.initializer(`${stem}_b`, bias, [out])]) : y;
}

/** `linear` in int8 over a weight quantized already (`quantizeInt8`, `quantizeRows`). */
export function linearInt8(
  g: OnnxGraph,
  x: string,
  { q, scale }: { q: Int8Array; scale: Float32Array },
  out: number,
  inp: number,
  bias: Float32Array | undefined,
  stem: string,
): string {
  const qn = g.initializer(`${stem}_q`, q, [inp, out]);
  const sn = g.initializer(`${stem}_scale`, scale, [out]);
  const inputs = [x, qn, sn];
  if (bias) inputs.push("", g.initializer(`${stem}_bias`, bias, [out]));
  return g.op("DynamicQuantizeMatMul", inputs, {}, MS);
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
