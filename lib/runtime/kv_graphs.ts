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
import {
  alibiBias,
  buildKvBlockGraph,
  cacheHeadDim,
  JOINED_PREFIX,
  type KvBlockGraphs,
  kvBlockIo,
  type KvCacheType,
  ropeTables,
  toFloat16,
} from "./kv_block_graph.ts";
import type { ModelConfig } from "./model_config.ts";
import type { OnnxGraph } from "./onnx_graph.ts";
import {
  type OrtApi,
  type OrtHandle,
  type OrtSession,
  type OrtSessionSettings,
  type OrtTensor,
  TensorType,
  type TensorTypeId,
} from "./native/ort_api.ts";
import { type BlockProbe, checkWeightsPacked } from "./packed_weights_check.ts";
import type { CheckpointTensors, RawTensor } from "./safetensors.ts";

/**
 * Intra-op threads spin while a run is in progress and `force_spinning_stop` parks them as soon
 * as it returns, so an idle pool never competes for the cores (see docs/architecture.md). That
 * holds for the pools sessions have of their own (the joined block graphs); the split graphs run on
 * the engine's shared pool (`OrtApi.globalThreads`), which never spins. Pool threads get their CPUs
 * where the engine makes them (`KvEngine.load`), the calling thread in `pinEngineThread`.
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
  /**
   * Runs `make` where a session's own pool may be made: its threads inherit the calling thread's
   * CPUs (the engine pins it to the pool's CPUs meanwhile; see `KvEngine.load`).
   */
  readonly ownPool?: (make: () => OrtSession) => OrtSession;
}

/**
 * Most threads the blocks' own pools may add up to (`threads − 1` per block). Beyond it — many
 * blocks on many threads — the joined graphs run on the shared pool instead: lone steps then lose
 * their spinning, but a process never needs thousands of threads (a service's task limit, a
 * container's pids limit).
 */
export const OWN_POOL_THREADS_MAX = 512;

/** Whether `blocks` joined graphs of `threads` threads each may have pools of their own. */
export function ownPoolsFit(blocks: number, threads: number): boolean {
  return blocks * Math.max(0, threads - 1) <= OWN_POOL_THREADS_MAX;
}

/** A block's sessions (kv_block_graph.ts). */
export interface BlockSessions {
  /** The joined graph, for a step that runs alone: one run on a pool of its own that spins during it. */
  block: OrtSession;
  proj: OrtSession;
  attn: OrtSession;
  /**
   * The attention graph again on the calling thread alone, for the decode steps of a batch: the
   * shared pool then parks while the sessions' attention runs, leaving a core to the main thread,
   * whose clients send the next steps (docs/benchmarks.md, "Continuous batching").
   */
  attn1: OrtSession;
  out: OrtSession;
  /**
   * Tensors over the weight matrices the sessions share, kept only where onnxruntime still reads
   * them after packing (`checkWeightsPacked`); empty when it does not.
   */
  weights: OrtTensor[];
}

/** A block's sessions, in the order they are made. */
const SESSION_PARTS = ["block", "proj", "attn", "attn1", "out"] as const;

/** The loaded graphs; `release()` frees every native object they hold. */
export class KvGraphs {
  readonly blocks = new Map<number, BlockSessions>();
  embed?: OrtSession;
  logits?: OrtSession;
  /** RoPE tables (Llama), shared by every block. */
  rope?: { cos: OrtTensor; sin: OrtTensor };
  /** ALiBi slopes (BLOOM). */
  slopes?: Float32Array;
  /** Bytes of the blocks' weights in their graphs, and of the head's tensors in the checkpoint's files. */
  weightBytes = 0;
  headBytes = 0;
  /** Blocks whose weight arrays onnxruntime still reads after packing (kept alive, so twice the bytes). */
  unpackedBlocks = 0;
  /** Packed weights shared by the joined and the split graphs of each block (and the head's). */
  #container?: OrtHandle;
  /** The head's matrices, as tensors its sessions read. */
  #headWeights: OrtTensor[] = [];

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
    this.weightBytes = this.headBytes = this.unpackedBlocks = 0;
    if (req.start !== undefined && req.end !== undefined) {
      if (cfg.modelType === "llama") this.rope = ropeTensors(api, cfg, o);
      else this.slopes = Float32Array.from(alibiSlopes(cfg.numHeads));
      this.#container ??= api.prepackedContainer();
      const ownPools = ownPoolsFit(req.end - req.start, o.settings.intraOpThreads);
      for (let i = req.start; i < req.end; i++) {
        const t = new Map<string, RawTensor>();
        // read from the files as the graphs are built: a block's weights never need to be in memory whole
        for (const n of blockTensorNames(cfg)) t.set(n, await tensors.lazy(`${req.blockPrefix}${i}.${n}`));
        const s = this.#loadBlock(
          api,
          cfg,
          buildKvBlockGraph(cfg, t, req.weights, o.cacheType),
          i,
          o,
          ownPools,
        );
        this.blocks.set(i, s);
        if (!checkWeightsPacked(api, cfg, s, this.probe(api, cfg, o))) this.unpackedBlocks++;
      }
    }
    if (req.head) {
      const weightMap = new Map(Object.entries(req.weightMap));
      const names = headTensorNames(cfg, req.headPrefix, (n) => weightMap.has(n));
      const t = new Map<string, RawTensor>();
      for (const [role, name] of Object.entries(names)) {
        // a tied LM head is the embedding table: read it once, whole (it becomes the float16 table);
        // the rest (an untied LM head, the norms) is read from the file as its graph asks
        let x = [...t.values()].find((v) => v.name === name);
        if (!x) {
          x = name === names.embed ? await tensors.readRaw(name) : await tensors.lazy(name);
          this.headBytes += x.byteLength;
        }
        t.set(role, x);
      }
      // the LM head first: the embedding table (a tied LM head's too) then becomes float16 in its own bytes
      this.#container ??= api.prepackedContainer();
      this.logits = this.#headSession(api, buildLogitsGraph(cfg, t, req.weights), "LM head", ["hidden"], [
        "logits",
      ], o);
      const embed = buildEmbedGraph(cfg, t, { reuseBytes: true });
      this.embed = this.#headSession(api, embed, "embeddings", ["ids"], ["hidden"], o);
    }
  }

  /**
   * A head graph's session whose matrices are tensors over the graph's own arrays (`AddInitializer`):
   * onnxruntime reads them where they are instead of copying a real vocabulary's table.
   */
  #headSession(
    api: OrtApi,
    g: OnnxGraph,
    what: string,
    inputs: string[],
    outputs: string[],
    o: KvGraphOptions,
  ): OrtSession {
    const enc = g.encode({ externalAbove: 2 ** 20 });
    const initializers = g.matrices().map((m) => {
      const value = api.tensor(m.data, m.dims, m.type as TensorTypeId);
      this.#headWeights.push(value); // released by release(), even if a later one fails
      return { name: m.name, value };
    });
    return api.session(enc.model, what, inputs, outputs, {
      ...o.settings,
      externalData: enc.externalData,
      shared: { container: this.#container!, initializers },
    });
  }

  /**
   * Block `i`'s sessions from its graphs. The weight matrices (those of the projection and output
   * graphs, which the joined graph holds too) go to every session as the same tensors over the same
   * arrays, and their packed form into one container: the block's weights take their bytes once.
   */
  #loadBlock(
    api: OrtApi,
    cfg: ModelConfig,
    graphs: KvBlockGraphs,
    i: number,
    o: KvGraphOptions,
    ownPools: boolean,
  ): BlockSessions {
    const io = kvBlockIo(cfg);
    const made: Partial<BlockSessions> = { weights: [] };
    try {
      const split: Record<"proj" | "out", { name: string; value: OrtTensor }[]> = { proj: [], out: [] };
      const joined: { name: string; value: OrtTensor }[] = [];
      for (const part of ["proj", "out"] as const) {
        for (const m of graphs[part].matrices()) {
          const value = api.tensor(m.data, m.dims, m.type as TensorTypeId);
          made.weights!.push(value);
          split[part].push({ name: m.name, value });
          joined.push({ name: JOINED_PREFIX[part] + m.name, value });
        }
      }
      const container = this.#container!;
      for (const part of SESSION_PARTS) {
        const base = part === "attn1" ? "attn" : part, graph = graphs[base];
        if (part === "proj" || part === "attn" || part === "out") this.weightBytes += graph.weightBytes;
        const enc = graph.encode({ externalAbove: 2 ** 20 });
        const initializers = part === "block" ? joined : part === "proj" || part === "out" ? split[part] : [];
        const make = () =>
          api.session(enc.model, `block ${i} ${part}`, io[base].inputs, io[base].outputs, {
            ...o.settings,
            callerOnly: part === "attn1",
            ownPool: part === "block" && ownPools,
            externalData: enc.externalData,
            ...(initializers.length ? { shared: { container, initializers } } : {}),
          });
        made[part] = part === "block" && ownPools && o.ownPool ? o.ownPool(make) : make();
      }
      return made as BlockSessions;
    } catch (err) {
      for (const part of SESSION_PARTS) made[part]?.release();
      for (const w of made.weights!) w.release();
      throw err;
    }
  }

  /** What `checkWeightsPacked` runs a block on (packed_weights_check.ts). */
  probe(api: OrtApi, cfg: ModelConfig, o: KvGraphOptions): BlockProbe {
    const half = o.cacheType === "float16";
    return {
      tokens: Math.max(1, Math.min(4, o.maxLength - 1)),
      positions: o.maxLength,
      caches: (rows, length, own) => {
        const keep = (x: OrtTensor) => (own.push(x), x);
        const shape = [rows, cfg.numKvHeads, length, cacheHeadDim(cfg)], n = shape.reduce((a, b) => a * b, 1);
        const cache = () =>
          keep(
            half
              ? api.tensor(new Uint16Array(n), shape, TensorType.FLOAT16)
              : api.tensor(new Float32Array(n), shape, TensorType.FLOAT),
          );
        return {
          k: cache(),
          v: cache(),
          extra: (past, s) => {
            const seq = keep(api.tensor(new Int32Array(rows).fill(past + s - 1), [rows], TensorType.INT32));
            const total = keep(api.tensor(Int32Array.of(past + s), [], TensorType.INT32));
            if (this.rope) return [seq, total, this.rope.cos, this.rope.sin];
            const bias = alibiBias(this.slopes!, s, past + s);
            return [seq, total, keep(api.tensor(bias, [1, cfg.numHeads, s, past + s], TensorType.FLOAT))];
          },
        };
      },
    };
  }

  /** Releases every session and shared tensor (idempotent). */
  release(): void {
    for (const b of this.blocks.values()) {
      for (const part of SESSION_PARTS) b[part].release();
      for (const w of b.weights) w.release();
    }
    this.blocks.clear();
    this.embed?.release();
    this.logits?.release();
    this.embed = this.logits = undefined;
    for (const w of this.#headWeights) w.release();
    this.#headWeights = [];
    // after the sessions: they point into it
    this.#container?.release();
    this.#container = undefined;
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
