/**
 * Graphs of the client head: embeddings (+ BLOOM's embedding LayerNorm) and final norm + LM head
 * (tied to the embeddings or not), so generation needs no other library.
 *   embed:  ids int64 [B, T] → hidden [B, T, H]
 *   logits: hidden [B, H]    → logits [B, vocab]
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { ModelConfig } from "./model_config.ts";
import { linear } from "./block_graph.ts";
import { toFloat16 } from "./kv_block_graph.ts";
import { attr, DataType, OnnxGraph } from "./onnx_graph.ts";
import type { WeightFormat } from "./types.ts";

export type HeadTensors = ReadonlyMap<
  string,
  { readonly shape: readonly number[]; readonly data: Float32Array; readonly fileDtype?: string }
>;

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

function get(t: HeadTensors, role: string, shape: number[]): Float32Array {
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
  return x.data;
}

/** Largest float16 value: a table with a larger one stays float32. */
const F16_MAX = 65504;

/**
 * The embeddings (and BLOOM's LayerNorm over them). A table stored in 16 bits in the checkpoint is
 * kept in float16 and each looked-up row widened to float32, which halves the head's largest
 * array (a Qwen3-32B table is 151 936 × 5 120): exact for an F16 file; from BF16, exact down to
 * float16's smallest normal value (6.1e-5), below it off by at most 3e-8.
 */
export function buildEmbedGraph(cfg: ModelConfig, t: HeadTensors): OnnxGraph {
  const H = cfg.hiddenSize, V = cfg.vocabSize;
  const g = new OnnxGraph("embed");
  g.input("ids", DataType.INT64, ["B", "T"]);
  g.output("hidden", DataType.FLOAT, ["B", "T", H]);
  const w = get(t, "embed", [V, H]);
  const dtype = t.get("embed")?.fileDtype;
  const half = (dtype === "F16" || dtype === "BF16") && w.every((x) => Math.abs(x) <= F16_MAX);
  const table = half ? g.initializer("embed", toFloat16(w), [V, H]) : g.initializer("embed", w, [V, H]);
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
  const w = get(t, "lm_head", [V, H]);
  if (format === "int8") {
    g.node("Identity", [linear(g, normed, w, V, H, undefined, "int8", "lm_head")], ["logits"]);
    return g;
  }
  g.node("Gemm", [normed, g.initializer("lm_head", w, [V, H])], ["logits"], { transB: attr.i(1) });
  return g;
}
