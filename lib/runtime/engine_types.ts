/**
 * What the runtime Worker's engine is asked to load and what it answers (shared by the Worker,
 * its protocol, the runtime and the engines).
 * @module
 */
import type { CpuPinning } from "../util/cpu_list.ts";
import type { HugePageResult } from "./_huge_pages.ts";
import type { KvCacheType } from "./kv_block_graph.ts";
import type { WeightFormat } from "./types.ts";

/** What the engine needs to load blocks and/or the head from local files. */
export interface EngineLoadRequest {
  /** Parsed config.json and generation_config.json (or {}). */
  config: Record<string, unknown>;
  generation?: Record<string, unknown>;
  /** Tensor name → shard file name. */
  weightMap: Record<string, string>;
  /** Shard file name → local path. */
  paths: Record<string, string>;
  /** Tensor prefix of block i is `${blockPrefix}${i}.`. */
  blockPrefix: string;
  /** Prefix of head tensors (e.g. "transformer." or ""). */
  headPrefix: string;
  /** Blocks to build, [start, end); omit for a head-only engine. */
  start?: number;
  end?: number;
  weights: WeightFormat;
  /** Also build the head graphs (embeddings, final norm, LM head). */
  head?: boolean;
  threads?: number;
  /**
   * Pin the thread that calls `load` (it must then run every step: the runtime Worker) and
   * onnxruntime's pool threads to distinct CPUs, as `planPinning` decides (see _cpu_affinity.ts).
   * Omitted: nothing is pinned (an engine driven from a test's or script's main thread).
   */
  pinning?: CpuPinning;
  /**
   * Back the loaded weights with 2 MiB pages when they total at least this many bytes (default
   * 64 MiB; `false` never). See _huge_pages.ts.
   */
  hugePagesAbove?: number | false;
  /** Absolute path of the onnxruntime library (resolved on the main thread, see native/). */
  libraryPath?: string;
  /** Longest sequence a session or forward call may reach (RoPE tables; default the model's, ≤ 8192). */
  maxLength?: number;
  /** KV cache element type (default float32; float16 halves the cache's memory, see docs/architecture.md). */
  kvCache?: KvCacheType;
}

export interface EngineLoadResult {
  loadMs: number;
  /** Bytes of weights held by the block graphs. */
  weightBytes: number;
  /**
   * Blocks whose weight arrays onnxruntime still reads after packing them, so they are held twice
   * (0 where the platform's kernels pack every matrix; see kv_graphs.ts, `checkWeightsPacked`).
   */
  unpackedBlocks?: number;
  /** What the huge-page advice did (absent when the weights were below the threshold). */
  hugePages?: HugePageResult;
  /** Where the compute threads run (`caller CPU 0, pool CPU 1`) or why they are not pinned. */
  pinning?: string;
  /** The CPUs the compute threads were pinned to, the caller's first (absent: not pinned). */
  pinnedCpus?: number[];
  /** Bytes one cache token takes (K and V of one position of one block). */
  kvBytesPerToken?: number;
  /** The onnxruntime library that was loaded. */
  library?: { path: string; version: string };
}

export interface EngineTensor {
  data: Float32Array;
  shape: number[];
}

/** One session's step in a batch (`Engine.stepMany`). */
export interface StepRequest {
  id: string;
  hidden: EngineTensor;
  startFromPosition?: number;
  hypoIds?: number[];
  /**
   * Tokens of the whole step this is the first chunk of (a chunked prompt): the session must have
   * room for all of them, so that a step refused for its length is refused before any chunk runs.
   */
  reserve?: number;
}

/** A step's own answer in a batch. */
export type StepResult = { ok: true; value: EngineTensor } | { ok: false; error: unknown };

/** What the runtime Worker needs of its engine (KvEngine). */
export interface Engine {
  load(req: EngineLoadRequest): Promise<EngineLoadResult>;
  open(id: string, start: number, end: number, maxLength: number, batch: number): void;
  close(id: string): boolean;
  step(
    id: string,
    hidden: EngineTensor,
    startFromPosition?: number,
    hypoIds?: number[],
  ): Promise<EngineTensor>;
  /** Steps of distinct sessions in one pass of the weights; each answer is its own. */
  stepMany(reqs: readonly StepRequest[]): Promise<StepResult[]>;
  forward(start: number, end: number, hidden: EngineTensor): Promise<EngineTensor>;
  embed(ids: Int32Array, b: number, t: number): Promise<EngineTensor>;
  logits(hidden: Float32Array, b: number): Promise<EngineTensor>;
  positionOf(id: string, fallback?: number): number;
  readonly sessions: number;
  /** Native objects not yet released, per kind (engines that track them). */
  native?(): Record<string, number>;
  dispose(): Promise<void>;
}
