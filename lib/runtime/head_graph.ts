/**
 * Graphs of the client head: embeddings (+ BLOOM's embedding LayerNorm) and final norm + LM head
 * (tied to the embeddings or not), so generation needs no other library.
 *   embed:  ids int64 [B, T] → hidden [B, T, H]
 *   logits: hidden [B, H]    → logits [B, vocab]
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { ModelConfig } from "./model_config.ts";
import { linearInt8, quantizeRows } from "./block_graph.ts";
import { toFloat16 } from "./kv_block_graph.ts";
import { attr, DataType, OnnxGraph } from "./onnx_graph.ts";
import { storedBytes, type StoredTensor, toFloat32 } from "./safetensors.ts";
import type { WeightFormat } from "./types.ts";
import { storedRows } from "./weight_rows.ts";

/**
 * A head tensor as the checkpoint stores it (safetensors' dtype and bytes): the tables are
 * converted a few rows at a time into what the graphs hold, so loading never holds a real
 * vocabulary's table in float32 when the graph does not.
 */
export type HeadTensor = StoredTensor;

export type HeadTensors = ReadonlyMap<string, HeadTensor>;

/** Role → checkpoint tensor name for the head of this model. */
export function headTensorNames(
  cfg: ModelConfig,
  prefix: string,
  has: (name: string) => boolean,
): Record<string, string> {
  if (cfg.modelType === "bloom") {
    return {
      embed: `${prefix}word_embeddings.weight`,
      embed_ln_w: `${prefix}word_embeddings_layernorm.weight`,
      embed_ln_b: `${prefix}word_embeddings_layernorm.bias`,
      norm_w: `${prefix}ln_f.weight`,
      norm_b: `${prefix}ln_f.bias`,
      lm_head: `${prefix}word_embeddings.weight`,
    };
  }
  const embed = `${prefix}embed_tokens.weight`;
  let lmHead = embed;
  if (!cfg.tieWordEmbeddings) {
    if (!has("lm_head.weight")) {
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        "tie_word_embeddings is false but the checkpoint has no lm_head.weight",
        {
          hint: "the checkpoint is incomplete or its config is wrong",
        },
      );
    }
    lmHead = "lm_head.weight";
  }
  return { embed, norm_w: `${prefix}norm.weight`, lm_head: lmHead };
}

function tensor(t: HeadTensors, role: string, shape: number[]): HeadTensor {
  const x = t.get(role);
  if (!x || x.shape.length !== shape.length || x.shape.some((d, i) => d !== shape[i])) {
    throw new RuntimeError(
      "BAD_CHECKPOINT",
      `head tensor ${role} has shape [${x?.shape ?? "missing"}], expected [${shape}]`,
      {
        hint: "the checkpoint does not match its config.json",
      },
    );
  }
  return x;
}

/** A head tensor in float32, whole. */
function get(t: HeadTensors, role: string, shape: number[]): Float32Array {
  const x = tensor(t, role, shape);
  return toFloat32(x.dtype, storedBytes(x), role);
}

/**
 * Largest bfloat16 bit pattern (sign cleared) within float16's range (whose largest value is 65 504):
 * 65 280; the next, 65 536, is past it. A table with a larger value stays float32.
 */
const BF16_F16_MAX = 0x477f;

let bf16ToF16: Uint16Array | undefined;

/** float16 bits of every bfloat16 bit pattern, as `toFloat16` rounds its float32 value (made once). */
function bf16Table(): Uint16Array {
  if (bf16ToF16) return bf16ToF16;
  const wide = new Uint32Array(65536);
  for (let b = 0; b < 65536; b++) wide[b] = b << 16;
  return bf16ToF16 = toFloat16(new Float32Array(wide.buffer));
}

/**
 * A [rows, cols] 16-bit table in float16, or undefined when a value is past float16's range (or
 * the file is not 16-bit). `reuse`: the tensor's bytes become the table (F16 as they are, BF16
 * converted in place) instead of a copy — for the last use of the tensor.
 */
function float16Table(x: HeadTensor, rows: number, cols: number, reuse: boolean): Uint16Array | undefined {
  if (x.dtype !== "F16" && x.dtype !== "BF16") return undefined;
  const bytes = storedBytes(x), n = rows * cols, aligned = bytes.byteOffset % 2 === 0;
  const src = aligned
    ? new Uint16Array(bytes.buffer, bytes.byteOffset, n)
    : new Uint16Array(new Uint8Array(bytes).buffer, 0, n);
  // where the array is a copy already (read from the file, or unaligned) it is this table's own
  const own = reuse || !x.bytes || !aligned;
  if (x.dtype === "F16") return own ? src : src.slice();
  for (let i = 0; i < n; i++) if ((src[i] & 0x7fff) > BF16_F16_MAX) return undefined;
  const lut = bf16Table(), out = own ? src : new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = lut[src[i]];
  return out;
}

/**
 * The embeddings (and BLOOM's LayerNorm over them). A table stored in 16 bits in the checkpoint is
 * kept in float16 and each looked-up row widened to float32, which halves the head's largest
 * array (a Qwen3-32B table is 151 936 × 5 120): exact for an F16 file; from BF16, exact down to
 * float16's smallest normal value (6.1e-5), below it off by at most 3e-8. `reuseBytes`: the
 * table is made in the tensor's own bytes (build the LM head of a tied table first).
 */
export function buildEmbedGraph(
  cfg: ModelConfig,
  t: HeadTensors,
  options: { reuseBytes?: boolean } = {},
): OnnxGraph {
  const H = cfg.hiddenSize, V = cfg.vocabSize;
  const g = new OnnxGraph("embed");
  g.input("ids", DataType.INT64, ["B", "T"]);
  g.output("hidden", DataType.FLOAT, ["B", "T", H]);
  const half = float16Table(tensor(t, "embed", [V, H]), V, H, options.reuseBytes ?? false);
  const table = half
    ? g.initializer("embed", half, [V, H])
    : g.initializer("embed", get(t, "embed", [V, H]), [V, H]);
  const rows = g.op("Gather", [table, "ids"], { axis: attr.i(0) });
  const emb = half ? g.op("Cast", [rows], { to: attr.i(DataType.FLOAT) }) : rows;
  if (cfg.modelType === "bloom") {
    g.node(
      "LayerNormalization",
      [
        emb,
        g.initializer("ln_w", get(t, "embed_ln_w", [H]), [H]),
        g.initializer("ln_b", get(t, "embed_ln_b", [H]), [H]),
      ],
      ["hidden"],
      {
        axis: attr.i(-1),
        epsilon: attr.f(cfg.eps),
      },
    );
  } else {
    g.node("Identity", [emb], ["hidden"]);
  }
  return g;
}

/**
 * The final norm and the LM head. `int8`: the LM head's rows quantized like a block's weights
 * (symmetric, a scale per vocabulary row; `DynamicQuantizeMatMul`): a quarter of the bytes a
 * token's logits read, which for a real vocabulary is most of what the client computes per token.
 */
export function buildLogitsGraph(cfg: ModelConfig, t: HeadTensors, format: WeightFormat = "fp32"): OnnxGraph {
  const H = cfg.hiddenSize, V = cfg.vocabSize;
  const g = new OnnxGraph("logits");
  g.input("hidden", DataType.FLOAT, ["B", H]);
  g.output("logits", DataType.FLOAT, ["B", V]);
  const normed = cfg.modelType === "bloom"
    ? g.op("LayerNormalization", [
      "hidden",
      g.initializer("ln_f_w", get(t, "norm_w", [H]), [H]),
      g.initializer("ln_f_b", get(t, "norm_b", [H]), [H]),
    ], {
      axis: attr.i(-1),
      epsilon: attr.f(cfg.eps),
    })
    : g.op("SimplifiedLayerNormalization", ["hidden", g.initializer("norm_w", get(t, "norm_w", [H]), [H])], {
      axis: attr.i(-1),
      epsilon: attr.f(cfg.eps),
    });
  if (format === "int8") {
    const q = quantizeRows(storedRows(tensor(t, "lm_head", [V, H]), V, H, "lm_head"));
    g.node("Identity", [linearInt8(g, normed, q, V, H, undefined, "lm_head")], ["logits"]);
    return g;
  }
  g.node("Gemm", [normed, g.initializer("lm_head", get(t, "lm_head", [V, H]), [V, H])], ["logits"], {
    transB: attr.i(1),
  });
  return g;
}
