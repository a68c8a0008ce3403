/**
 * Reads a Hugging Face `config.json` into the normalized `ModelConfig` the graph builders use,
 * refusing (UNSUPPORTED_MODEL, naming the field) anything that would change the math in a way
 * the runtime does not implement.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { ModelType } from "./types.ts";

export type RopeScaling =
  | { readonly type: "default" }
  | { readonly type: "linear"; readonly factor: number }
  | {
    readonly type: "llama3";
    readonly factor: number;
    readonly lowFreqFactor: number;
    readonly highFreqFactor: number;
    readonly originalMaxPositions: number;
  };

interface CommonConfig {
  readonly modelType: ModelType;
  /** The config's own model_type (e.g. "mistral", "qwen2" for Llama-family models). */
  readonly sourceType: string;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly numHeads: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly vocabSize: number;
  readonly eps: number;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId?: number;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId?: number;
  /** Positions the model was built for (undefined = unbounded, e.g. ALiBi). */
  readonly maxPositions?: number;
}

export interface BloomConfig extends CommonConfig {
  readonly modelType: "bloom";
}

export interface LlamaConfig extends CommonConfig {
  readonly modelType: "llama";
  readonly intermediateSize: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling;
  /** q/k/v projections have biases (Qwen2, attention_bias). */
  readonly qkvBias: boolean;
  /** o_proj has a bias too (attention_bias: true in Llama configs). */
  readonly oBias: boolean;
  /**
   * Qwen3: an RMSNorm over head_dim (weights `self_attn.q_norm` / `k_norm`, eps = rms_norm_eps) on
   * every query and key head, after the projections and before RoPE.
   */
  readonly qkNorm: boolean;
}

export type ModelConfig = BloomConfig | LlamaConfig;

const unsupported = (what: string, value: unknown, hint: string) =>
  new RuntimeError("UNSUPPORTED_MODEL", `unsupported model config: ${what} = ${JSON.stringify(value)}`, {
    hint,
    details: { field: what, value },
  });

function num(raw: Record<string, unknown>, keys: string[], fallback?: number): number {
  for (const k of keys) {
    const v = raw[k];
    if (typeof v === "number" && Number.isFinite(v)) return v;
  }
  if (fallback !== undefined) return fallback;
  throw new RuntimeError("BAD_CHECKPOINT", `config.json has no numeric ${keys.join(" / ")}`, {
    hint: "check that config.json is a transformers model config",
    details: { keys },
  });
}

/**
 * Upper bounds of a config's sizes, far above any released model (the largest dense ones: hidden
 * 16 384, 128 heads, 126 layers, intermediate 53 248, vocabularies of 256 000): a config beyond is
 * refused before anything is sized from it (RoPE tables, caches, the span's choice).
 */
const MAX_SIZE: Record<string, number> = {
  hidden_size: 65_536,
  n_embed: 65_536,
  n_head: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 1024,
  n_layer: 1024,
  num_hidden_layers: 1024,
  intermediate_size: 1 << 20,
  vocab_size: 1 << 22,
};

function positiveInt(raw: Record<string, unknown>, keys: string[], fallback?: number): number {
  const v = num(raw, keys, fallback);
  if (!Number.isInteger(v) || v < 1) {
    throw new RuntimeError("BAD_CHECKPOINT", `config.json ${keys[0]} must be a positive integer, got ${v}`, {
      hint: "check config.json",
    });
  }
  const max = MAX_SIZE[keys[0]];
  if (max !== undefined && v > max) {
    throw new RuntimeError(
      "BAD_CHECKPOINT",
      `config.json ${keys[0]} ${v} is above ${max}, more than any model has`,
      {
        hint: "check config.json: it is not a real model's",
        details: { field: keys[0], value: v, max },
      },
    );
  }
  return v;
}

/** A positive finite number below `max` (an epsilon, a RoPE base), else BAD_CHECKPOINT naming it. */
function inRange(
  raw: Record<string, unknown>,
  key: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = num(raw, [key], fallback);
  if (!(v > min && v < max)) {
    throw new RuntimeError("BAD_CHECKPOINT", `config.json ${key} ${v} is outside (${min}, ${max})`, {
      hint: "check config.json: with this value the model computes NaN",
      details: { field: key, value: v },
    });
  }
  return v;
}

function ids(v: unknown): number[] {
  if (typeof v === "number") return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === "number");
  return [];
}

const LLAMA_FAMILY = new Set(["llama", "mistral", "qwen2", "qwen3"]);
/** Mixture-of-experts relatives of supported families: refused with their own hint. */
const MOE_TYPES = new Set([
  "mixtral",
  "qwen2_moe",
  "qwen3_moe",
  "qwen3_next",
  "qwen3_5_moe",
  "qwen3_5_moe_text",
  "deepseek_v3",
]);

/** The longest session a server takes by default: its model's positions, at most this. */
export const MAX_SESSION_LENGTH = 8192;

/**
 * The longest session (prompt + new tokens) a server of this model takes by default: what the
 * engine sizes its caches for and refuses beyond (TOO_LONG), and what a client caps a generation at.
 */
export function sessionLengthLimit(cfg: { readonly maxPositions?: number }): number {
  return Math.max(1, Math.min(cfg.maxPositions ?? MAX_SESSION_LENGTH, MAX_SESSION_LENGTH));
}

/** Normalizes a parsed config.json (+ optional generation_config.json for special tokens). */
export function parseModelConfig(
  raw: Record<string, unknown>,
  generation: Record<string, unknown> = {},
): ModelConfig {
  const type = raw.model_type;
  if (typeof type !== "string") {
    throw new RuntimeError("BAD_CHECKPOINT", "config.json has no model_type", {
      hint: "check that config.json is a transformers model config",
    });
  }
  const eosTokenIds = ids(generation.eos_token_id ?? raw.eos_token_id);
  const bos = ids(generation.bos_token_id ?? raw.bos_token_id)[0];
  const pad = ids(generation.pad_token_id ?? raw.pad_token_id)[0];
  if (type === "bloom") {
    const hiddenSize = positiveInt(raw, ["hidden_size", "n_embed"]);
    const numHeads = positiveInt(raw, ["n_head", "num_attention_heads"]);
    if (hiddenSize % numHeads !== 0) {
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        `hidden_size ${hiddenSize} is not divisible by n_head ${numHeads}`,
        { hint: "check config.json" },
      );
    }
    if (raw.apply_residual_connection_post_layernorm === true) {
      throw unsupported(
        "apply_residual_connection_post_layernorm",
        true,
        "only pre-LN residuals (false) are implemented",
      );
    }
    return {
      modelType: "bloom",
      sourceType: type,
      hiddenSize,
      numLayers: positiveInt(raw, ["n_layer", "num_hidden_layers"]),
      numHeads,
      numKvHeads: numHeads,
      headDim: hiddenSize / numHeads,
      vocabSize: positiveInt(raw, ["vocab_size"]),
      eps: inRange(raw, "layer_norm_epsilon", 1e-5, 0, 1),
      tieWordEmbeddings: true,
      bosTokenId: bos,
      eosTokenIds,
      padTokenId: pad,
    };
  }
  if (LLAMA_FAMILY.has(type)) {
    const hiddenSize = positiveInt(raw, ["hidden_size"]);
    const numHeads = positiveInt(raw, ["num_attention_heads"]);
    const numKvHeads = positiveInt(raw, ["num_key_value_heads"], numHeads);
    // transformers' Qwen3Config defaults head_dim to 128; the others derive it from the hidden size.
    const headDim = positiveInt(
      raw,
      ["head_dim"],
      type === "qwen3" ? 128 : Math.floor(hiddenSize / numHeads),
    );
    if (numHeads % numKvHeads !== 0) {
      throw new RuntimeError(
        "BAD_CHECKPOINT",
        `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
        {
          hint: "check config.json",
        },
      );
    }
    if (headDim % 2 !== 0) throw unsupported("head_dim", headDim, "rotary embeddings need an even head_dim");
    const act = raw.hidden_act ?? "silu";
    if (act !== "silu") throw unsupported("hidden_act", act, "only silu MLPs are implemented");
    if (raw.mlp_bias === true) throw unsupported("mlp_bias", true, "MLP biases are not implemented");
    const prf = raw.partial_rotary_factor;
    if (prf !== undefined && prf !== 1 && prf !== 1.0) {
      throw unsupported("partial_rotary_factor", prf, "only full rotary embeddings are implemented");
    }
    if ((type === "qwen2" || type === "qwen3") && raw.use_sliding_window === true) {
      throw unsupported(
        "use_sliding_window",
        true,
        "sliding-window attention is not implemented (the released dense Qwen checkpoints have it off)",
      );
    }
    const layerTypes = raw.layer_types;
    if (Array.isArray(layerTypes) && layerTypes.some((t) => t !== "full_attention")) {
      throw unsupported(
        "layer_types",
        [...new Set(layerTypes)],
        "only full attention in every layer is implemented",
      );
    }
    const maxPositions = positiveInt(raw, ["max_position_embeddings"], 8192);
    let maxLen = maxPositions;
    if (type === "mistral" && raw.sliding_window !== undefined && raw.sliding_window !== null) {
      // Within the window sliding attention equals full attention; cap sequences there.
      maxLen = Math.min(maxLen, positiveInt(raw, ["sliding_window"]));
    }
    const attentionBias = raw.attention_bias === true;
    return {
      modelType: "llama",
      sourceType: type,
      hiddenSize,
      numLayers: positiveInt(raw, ["num_hidden_layers"]),
      numHeads,
      numKvHeads,
      headDim,
      vocabSize: positiveInt(raw, ["vocab_size"]),
      eps: inRange(raw, "rms_norm_eps", 1e-6, 0, 1),
      tieWordEmbeddings: raw.tie_word_embeddings === true,
      bosTokenId: bos,
      eosTokenIds,
      padTokenId: pad,
      maxPositions: maxLen,
      intermediateSize: positiveInt(raw, ["intermediate_size"]),
      ropeTheta: inRange(raw, "rope_theta", 10000, 1, 1e12),
      ropeScaling: parseRopeScaling(raw.rope_scaling),
      qkvBias: type === "qwen2" || attentionBias,
      oBias: type !== "qwen2" && attentionBias,
      qkNorm: type === "qwen3",
    };
  }
  if (MOE_TYPES.has(type)) {
    throw unsupported(
      "model_type",
      type,
      "mixture-of-experts models are not supported; serve a dense model (e.g. qwen3, llama)",
    );
  }
  throw unsupported(
    "model_type",
    type,
    "supported model types: bloom, llama (and Llama-family mistral, qwen2, qwen3)",
  );
}

function parseRopeScaling(rs: unknown): RopeScaling {
  if (rs === undefined || rs === null) return { type: "default" };
  if (typeof rs !== "object") throw unsupported("rope_scaling", rs, "rope_scaling must be an object or null");
  const o = rs as Record<string, unknown>;
  const kind = o.rope_type ?? o.type;
  const f = (k: string, d?: number) => {
    const v = o[k];
    // (1e-300 and the like are positive, and their inverse is not finite)
    if (typeof v === "number" && Number.isFinite(v) && Number.isFinite(1 / v) && v > 0) return v;
    if (d !== undefined) return d;
    throw unsupported(`rope_scaling.${k}`, v, "a positive number is required");
  };
  if (kind === "default") return { type: "default" };
  if (kind === "linear") return { type: "linear", factor: f("factor") };
  if (kind === "llama3") {
    return {
      type: "llama3",
      factor: f("factor"),
      lowFreqFactor: f("low_freq_factor"),
      highFreqFactor: f("high_freq_factor"),
      originalMaxPositions: f("original_max_position_embeddings"),
    };
  }
  throw unsupported("rope_scaling.rope_type", kind, "supported rope scalings: default, linear, llama3");
}

/**
 * RoPE inverse frequencies (length headDim/2) with the config's scaling applied, in float64, as
 * transformers' `ROPE_INIT_FUNCTIONS` compute them. Linear scaling divides the frequencies by the
 * factor (equivalent to dividing positions).
 */
export function ropeInvFreq(cfg: LlamaConfig): Float64Array {
  const d = cfg.headDim;
  const inv = new Float64Array(d / 2);
  for (let i = 0; i < d / 2; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / d);
  const s = cfg.ropeScaling;
  if (s.type === "linear") {
    for (let i = 0; i < inv.length; i++) inv[i] /= s.factor;
  } else if (s.type === "llama3") {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < inv.length; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = inv[i] / s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * inv[i] / s.factor + smooth * inv[i];
      }
    }
  }
  return inv;
}
