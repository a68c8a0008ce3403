/**
 * What the client head holds in memory once loaded, and at the peak of its load, from the model's
 * sizes: the figure `plumise doctor` reports and the check a head makes before it loads
 * (`OnnxClientHead.start`).
 * @module
 */
import type { WeightFormat } from "../config/types.ts";

/** The sizes the estimate needs. */
export interface HeadShape {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** Bytes per weight in the checkpoint files (2 for float16/bfloat16, 4 for float32). */
  readonly fileBytesPerWeight: number;
}

/** Bytes per weight of the LM head in a served format (its scales, one per row, aside). */
const LM_HEAD_BYTES_PER_WEIGHT: Record<WeightFormat, number> = { int8: 1, fp32: 4 };

/**
 * The embedding table (float16 from a 16-bit file, float32 from a 32-bit one) plus the LM head in
 * the served format, twice: onnxruntime keeps its packed copy beside it (docs/architecture.md,
 * "Client head").
 */
export function clientHeadBytes(s: HeadShape, weights: WeightFormat): number {
  return s.vocabSize * s.hiddenSize * (s.fileBytesPerWeight + 2 * LM_HEAD_BYTES_PER_WEIGHT[weights]);
}

/**
 * What loading the head takes at its peak: `clientHeadBytes` plus onnxruntime's transient copy of
 * both tables while it makes the sessions (it reads in-memory external data even for tensors it is
 * given). A little under the peaks a probe measured (docs/benchmarks.md, "The client head"): the
 * load's own buffers are not counted.
 */
export function clientHeadLoadBytes(s: HeadShape, weights: WeightFormat): number {
  const copies = s.vocabSize * s.hiddenSize * (s.fileBytesPerWeight + LM_HEAD_BYTES_PER_WEIGHT[weights]);
  return clientHeadBytes(s, weights) + copies;
}

/** Bytes per weight of a checkpoint from its raw `config.json` (`torch_dtype`; 16-bit unless float32). */
export function fileBytesPerWeight(raw: Record<string, unknown>): number {
  return String(raw.torch_dtype ?? raw.dtype ?? "float16") === "float32" ? 4 : 2;
}
