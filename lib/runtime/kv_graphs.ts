/**
 * The ORT sessions a `KvEngine` (kv_engine.ts) runs: one per served block (kv_block_graph.ts) and
 * the head's embeddings and LM head when asked, built from the checkpoint's tensors at load, with
 * the tensors every block shares (Llama's RoPE tables, BLOOM's ALiBi slopes) and the settings of
 * their thread pools.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import { alibiSlopes, blockTensorNames } from "./block_graph.ts";
import type { EngineLoadRequest } from "./engine_types.ts";
import { buildEmbedGraph, buildLogitsGraph, headTensorNames } from "./head_graph.ts";
import { buildKvBlockGraph, kvBlockIo, type KvCacheType, ropeTables, toFloat16 } from "./kv_block_graph.ts";
import type { ModelConfig } from "./model_config.ts";
import {
  type OrtApi,
  type OrtSession,
  type OrtSessionSettings,
  type OrtTensor,
  TensorType,
} from "./native/ort_api.ts";
import type { CheckpointTensors } from "./safetensors.ts";

/**
 * Intra-op threads spin while a run is in progress and `force_spinning_stop` parks them as soon
 * as it returns, so an idle pool never competes for the cores (see docs/architecture.md). The pool
 * is the engine's one shared pool (`OrtApi.globalThreads`); its threads get their CPUs where the
 * engine makes it (`KvEngine.load`), the calling thread in `pinEngineThread`.
 */
export function engineSettings(threads: number): OrtSessionSettings {
  return {
    intraOpThreads: threads,
    config: {
      "session.intra_op.allow_spinning": "1",
      "session.inter_op.allow_spinning": "0",
      "session.force_spinning_stop": "1",
    },
  };
}

/** How the graphs are built: the caches' element type, the sessions' length, the pools' settings. */
export interface KvGraphOptions {
  readonly cacheType: KvCacheType;
  readonly maxLength: number;
  readonly settings: OrtSessionSettings;
}

/** A block's three sessions (kv_block_graph.ts). */
export interface BlockSessions {
  proj: OrtSession;
  attn: OrtSession;
  /**
   * The attention graph again on the calling thread alone, for the decode steps of a batch: the
   * shared pool then parks while the sessions' attention runs, leaving a core to the main thread,
   * whose clients send the next steps (docs/benchmarks.md, "Continuous batching").
   */
  attn1: OrtSession;
  out: OrtSession;
}

/** The loaded graphs; `release()` frees every native object they hold. */
export class KvGraphs {
  readonly blocks = new Map<number, BlockSessions>();
  embed?: OrtSession;
  logits?: OrtSession;
  /** RoPE tables (Llama), shared by every block. */
  rope?: { cos: OrtTensor; sin: OrtTensor };
  /** ALiBi slopes (BLOOM). */
  slopes?: Float32Array;
  /** Bytes of the blocks' weights, and of the head's. */
  weightBytes = 0;
  headBytes = 0;

  /** The sessions of block `i`; `BAD_SPAN` when it is not loaded. */
  block(i: number): BlockSessions {
    const s = this.blocks.get(i);
    if (!s) {
      throw new RuntimeError("BAD_SPAN", `block ${i} is not loaded`, {
        hint: "request a span this runtime serves",
      });
    }
    return s;
  }

  /**
   * Builds the graphs `req` asks for (its span's blocks, the head) from `tensors`. What was built
   * before a failure stays here, for `release()`.
   */
  async load(
    api: OrtApi,
    req: EngineLoadRequest,
    cfg: ModelConfig,
    tensors: CheckpointTensors,
    o: KvGraphOptions,
  ): Promise<void> {
    this.weightBytes = this.headBytes = 0;
    if (req.start !== undefined && req.end !== undefined) {
      if (cfg.modelType === "llama") this.rope = ropeTensors(api, cfg, o);
      else this.slopes = Float32Array.from(alibiSlopes(cfg.numHeads));
      const io = kvBlockIo(cfg);
      for (let i = req.start; i < req.end; i++) {
        const t = new Map<string, { shape: readonly number[]; data: Float32Array }>();
        for (const n of blockTensorNames(cfg)) t.set(n, await tensors.read(`${req.blockPrefix}${i}.${n}`));
        const graphs = buildKvBlockGraph(cfg, t, req.weights, o.cacheType);
        const made: Partial<BlockSessions> = {};
        try {
          for (const part of ["proj", "attn", "attn1", "out"] as const) {
            const base = part === "attn1" ? "attn" : part, graph = graphs[base];
            if (part === base) this.weightBytes += graph.weightBytes;
            const enc = graph.encode({ externalAbove: 2 ** 20 });
            made[part] = api.session(enc.model, `block ${i} ${part}`, io[base].inputs, io[base].outputs, {
              ...o.settings,
              callerOnly: part === "attn1",
              externalData: enc.externalData,
            });
          }
        } catch (err) {
          for (const m of Object.values(made)) m.release();
          throw err;
        }
        this.blocks.set(i, made as BlockSessions);
      }
    }
    if (req.head) {
      const weightMap = new Map(Object.entries(req.weightMap));
      const names = headTensorNames(cfg, req.headPrefix, (n) => weightMap.has(n));
      const t = new Map<string, { shape: readonly number[]; data: Float32Array }>();
      for (const [role, name] of Object.entries(names)) {
        const x = await tensors.read(name);
        t.set(role, x);
        this.headBytes += x.data.byteLength;
      }
      const enc = (g: ReturnType<typeof buildEmbedGraph>) => g.encode();
      const e = enc(buildEmbedGraph(cfg, t)), l = enc(buildLogitsGraph(cfg, t));
      this.embed = api.session(e.model, "embeddings", ["ids"], ["hidden"], {
        ...o.settings,
        externalData: e.externalData,
      });
      this.logits = api.session(l.model, "LM head", ["hidden"], ["logits"], {
        ...o.settings,
        externalData: l.externalData,
      });
    }
  }

  /** Releases every session and shared tensor (idempotent). */
  release(): void {
    for (const b of this.blocks.values()) for (const s of [b.proj, b.attn, b.attn1, b.out]) s.release();
    this.blocks.clear();
    this.embed?.release();
    this.logits?.release();
    this.embed = this.logits = undefined;
    this.rope?.cos.release();
    this.rope?.sin.release();
    this.rope = undefined;
  }
}

/** Llama's RoPE tables for `maxLength` positions, in the caches' element type. */
function ropeTensors(
  api: OrtApi,
  cfg: ModelConfig & { modelType: "llama" },
  o: KvGraphOptions,
): { cos: OrtTensor; sin: OrtTensor } {
  const { cos, sin } = ropeTables(cfg, o.maxLength);
  const shape = [o.maxLength, cfg.headDim / 2];
  if (o.cacheType === "float16") {
    return {
      cos: api.tensor(toFloat16(cos), shape, TensorType.FLOAT16),
      sin: api.tensor(toFloat16(sin), shape, TensorType.FLOAT16),
    };
  }
  return { cos: api.tensor(cos, shape, TensorType.FLOAT), sin: api.tensor(sin, shape, TensorType.FLOAT) };
}
