/**
 * How much memory and disk a span of blocks takes, from a model's config: what `plumise doctor`
 * compares with what the machine has. Estimates, said as such: weights in the served format plus
 * a quarter for activations and a small KV cache reserve in memory (the tier table's rule), and
 * the checkpoint's own dtype on disk, where the hub's shards can hold more than the served blocks.
 * @module
 */
import { BASE_PROCESS_BYTES, TIERS } from "../config/tiers.ts";
import type { WeightFormat } from "../config/types.ts";
import { clientHeadBytes, fileBytesPerWeight as fileBytesOf } from "../runtime/client_head_bytes.ts";

/** The parts of a model config the estimate needs. */
export interface BlockShape {
  hiddenSize: number;
  intermediateSize: number;
  /** numKvHeads × headDim. */
  kvDim: number;
  /** numHeads × headDim: the hidden size except where head_dim is explicit (Qwen3-32B: 8192). */
  qDim?: number;
  /** Gated MLP (Llama family: gate, up, down). */
  gated: boolean;
  numLayers: number;
  vocabSize: number;
  tiedEmbeddings: boolean;
  /** Bytes per weight in the checkpoint files (2 for float16/bfloat16, 4 for float32). */
  fileBytesPerWeight: number;
}

export interface SpanFootprint {
  /** Memory the process needs for `numBlocks` blocks (+ the process's own base). */
  memoryBytes: number;
  /**
   * Memory of the client head, which a node loads on its first generation (the HTTP API): the
   * embedding table (float16 from a 16-bit file) and the LM head in the served format, held twice
   * (onnxruntime keeps its packed copy beside it).
   */
  headBytes: number;
  /** Disk the served blocks' weights take in the checkpoint files. */
  blockFileBytes: number;
  /** The whole checkpoint on disk (an upper bound of what is downloaded). */
  checkpointFileBytes: number;
}

/** Parameters of one block (attention q, o + k, v; MLP 2 or 3 matrices). */
export function blockParams(
  s: Pick<BlockShape, "hiddenSize" | "intermediateSize" | "kvDim" | "gated" | "qDim">,
): number {
  const attn = s.hiddenSize * (s.qDim ?? s.hiddenSize) * 2 + s.hiddenSize * s.kvDim * 2;
  return attn + s.hiddenSize * s.intermediateSize * (s.gated ? 3 : 2);
}

/** In-memory bytes per weight of a format, plus the quarter the tier table adds. */
const MEMORY_PER_WEIGHT: Record<WeightFormat, number> = { int8: 1.25, fp32: 4.25 };

export function spanFootprint(s: BlockShape, numBlocks: number, weights: WeightFormat): SpanFootprint {
  const per = blockParams(s);
  const embeddings = s.vocabSize * s.hiddenSize * (s.tiedEmbeddings ? 1 : 2);
  return {
    memoryBytes: Math.ceil(per * MEMORY_PER_WEIGHT[weights]) * numBlocks + BASE_PROCESS_BYTES,
    headBytes: clientHeadBytes(s, weights),
    blockFileBytes: per * numBlocks * s.fileBytesPerWeight,
    checkpointFileBytes: (per * s.numLayers + embeddings) * s.fileBytesPerWeight,
  };
}

/** The shape of a raw `config.json` (bloom or Llama family), or undefined when it is neither. */
export function blockShapeOf(raw: Record<string, unknown>): BlockShape | undefined {
  const n = (...keys: string[]) => {
    for (const k of keys) if (typeof raw[k] === "number") return raw[k] as number;
    return undefined;
  };
  const hidden = n("hidden_size", "n_embd");
  const layers = n("num_hidden_layers", "n_layer");
  const heads = n("num_attention_heads", "n_head");
  const vocab = n("vocab_size");
  if (!hidden || !layers || !heads || !vocab) return undefined;
  const fileBytesPerWeight = fileBytesOf(raw);
  if (raw.model_type === "bloom") {
    return {
      hiddenSize: hidden,
      intermediateSize: 4 * hidden,
      kvDim: hidden,
      gated: false,
      numLayers: layers,
      vocabSize: vocab,
      tiedEmbeddings: true,
      fileBytesPerWeight,
    };
  }
  const inter = n("intermediate_size");
  if (!inter) return undefined;
  // transformers' Qwen3Config defaults head_dim to 128; the others derive it from the hidden size
  const headDim = n("head_dim") ?? (raw.model_type === "qwen3" ? 128 : hidden / heads);
  return {
    hiddenSize: hidden,
    intermediateSize: inter,
    kvDim: (n("num_key_value_heads") ?? heads) * headDim,
    qDim: heads * headDim,
    gated: true,
    numLayers: layers,
    vocabSize: vocab,
    tiedEmbeddings: raw.tie_word_embeddings === true,
    fileBytesPerWeight,
  };
}

/** The tier whose model is `model`, for an estimate without the config. */
export function tierOfModel(model: string) {
  return Object.values(TIERS).find((t) => t.model === model);
}
