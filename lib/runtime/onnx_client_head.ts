/**
 * `OnnxClientHead`: the real `ClientHead` — embeddings (+ BLOOM's embedding LayerNorm) and final
 * norm + LM head as onnxruntime graphs in their own Worker. Only the shards holding the head
 * tensors are fetched.
 * @module
 */
import { RuntimeError, UnavailableError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import type { CpuPinning } from "../util/cpu_list.ts";
import { silentLogger } from "../util/logger.ts";
import { availableMemoryBytes } from "../util/available_memory.ts";
import type { ResolvedCheckpoint } from "./checkpoint.ts";
import { engineSource, resolveCheckpoint } from "./checkpoint.ts";
import type { DownloadProgress } from "./hub_download.ts";
import type {
  ClientHead,
  HeadInfo,
  HiddenStates,
  Logits,
  ModelSource,
  TokenIds,
  WeightFormat,
} from "./types.ts";
import type { EngineLoadResult } from "./engine_types.ts";
import { WorkerClient } from "./worker_client.ts";
import { headTensorNames } from "./head_graph.ts";
import { CheckpointTensors } from "./safetensors.ts";
import { clientHeadLoadBytes } from "./client_head_bytes.ts";
import { describeBytes } from "../config/tiers.ts";
import { resolveOrtLibrary } from "./native/ort_library_path.ts";
import { sessionLengthLimit } from "./model_config.ts";

export interface ClientHeadOptions extends ModelSource {
  /**
   * The LM head's weights (default fp32): `int8` reads a quarter of the bytes per token, with
   * logits within int8 rounding of fp32 (docs/architecture.md, "Continuous batching", Client head).
   */
  weights?: WeightFormat;
  /** onnxruntime intra-op threads (default 2). */
  threads?: number;
  /** Pin the compute threads to distinct CPUs (default "auto"; see `BlockRuntimeOptions.pinning`). */
  pinning?: CpuPinning;
  logger?: Logger;
  signal?: AbortSignal;
  onProgress?: (p: DownloadProgress) => void;
  /** Absolute path of the onnxruntime library (default: the verified copy `ensureOrtLibrary` keeps). */
  ortLibrary?: string;
  /**
   * Bytes of embedded single tokens kept on the calling thread (default 8 MiB; 0: none): a decode
   * step's embedding is then a copy instead of a round trip to the head's Worker.
   */
  embedCacheBytes?: number;
  /**
   * Memory the machine has available, read before loading (default: the system's; undefined: not
   * known, no check). A head that would not fit is refused instead of loaded into an out-of-memory
   * kill that would take the node's blocks down with it.
   */
  availableMemoryBytes?: () => number | undefined;
}

/**
 * Bytes per weight of the embedding table in memory: 2 where its file stores 16 bits (the head keeps
 * it in float16), 4 otherwise; read from its shard's header, whatever `config.json` says.
 */
async function tableBytesPerWeight(ck: ResolvedCheckpoint): Promise<number> {
  const names = headTensorNames(ck.modelConfig, ck.headPrefix, (n) => n in ck.weightMap);
  const tensors = new CheckpointTensors(new Map(Object.entries(ck.weightMap)), (f) => ck.paths[f]);
  try {
    const e = await tensors.entry(names.embed);
    const count = e.shape.reduce((a, b) => a * b, 1);
    return e.end - e.begin === 2 * count ? 2 : 4;
  } finally {
    await tensors.close();
  }
}

const bad = (message: string, hint: string, details?: Record<string, unknown>) =>
  new RuntimeError("BAD_INPUT", message, { hint, details });

export class OnnxClientHead implements ClientHead {
  readonly #o: ClientHeadOptions;
  readonly #log: Logger;
  #worker?: WorkerClient;
  #ckpt?: ResolvedCheckpoint;
  /** Rows of single tokens by id, least recently used first. */
  readonly #rows = new Map<number, Float32Array>();
  #starting?: Promise<void>;

  constructor(options: ClientHeadOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ part: "head" });
  }

  start(): Promise<void> {
    this.#starting ??= this.#start().catch((err) => {
      this.#starting = undefined;
      this.#worker?.terminate();
      this.#worker = undefined;
      throw err;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const o = this.#o;
    const ck = await resolveCheckpoint(o, {
      head: true,
      logger: this.#log,
      signal: o.signal,
      onProgress: o.onProgress,
    });
    const weights = o.weights ?? "fp32";
    const c = ck.modelConfig;
    const need = clientHeadLoadBytes(
      { vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, fileBytesPerWeight: await tableBytesPerWeight(ck) },
      weights,
    );
    const available = (o.availableMemoryBytes ?? availableMemoryBytes)();
    if (available !== undefined && need > available) {
      const details = { needBytes: need, availableBytes: available, weights };
      // the message may reach a remote caller: the model's size, not its path or this machine's memory
      const err = new UnavailableError(
        "INSUFFICIENT_MEMORY",
        `not enough memory for the client head (${c.vocabSize} × ${c.hiddenSize}, ${weights}: about ` +
          `${describeBytes(need)} while it loads): not loaded`,
        {
          hint: `generate through a machine with more memory${
            weights === "fp32" ? ", use int8 weights (WEIGHTS=int8)" : ""
          }, or free memory`,
          details,
        },
      );
      this.#log.warn("client head not loaded: not enough memory", {
        model: o.model,
        needMB: Math.round(need / 2 ** 20),
        availableMB: Math.round(available / 2 ** 20),
        weights,
      });
      throw err;
    }
    const worker = new WorkerClient(this.#log);
    this.#worker = worker;
    const res = await worker.call("load", {
      ...engineSource(ck),
      weights,
      head: true,
      threads: o.threads ?? 2,
      pinning: o.pinning ?? "auto",
      libraryPath: await resolveOrtLibrary(o.ortLibrary, { signal: o.signal }),
    }, { signal: o.signal }) as EngineLoadResult;
    this.#ckpt = ck;
    this.#log.info("head ready", { model: o.model, pinning: res.pinning });
  }

  async stop(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    this.#starting = undefined;
    this.#rows.clear();
    await w?.dispose();
  }

  #live(): { worker: WorkerClient; ck: ResolvedCheckpoint } {
    if (!this.#worker || !this.#ckpt) {
      throw new RuntimeError("NOT_RUNNING", `client head for ${this.#o.model} is not running`, {
        hint: "call start() first",
      });
    }
    return { worker: this.#worker, ck: this.#ckpt };
  }

  get info(): HeadInfo {
    const { ck } = this.#live();
    const c = ck.modelConfig;
    return {
      modelId: this.#o.model,
      modelType: c.modelType,
      hiddenSize: c.hiddenSize,
      vocabSize: c.vocabSize,
      numBlocks: c.numLayers,
      specialTokens: { bos: c.bosTokenId, eos: c.eosTokenIds, pad: c.padTokenId },
      maxLength: sessionLengthLimit(c),
    };
  }

  async embed(ids: TokenIds, options: { signal?: AbortSignal } = {}): Promise<HiddenStates> {
    const { worker, ck } = this.#live();
    const [b, t] = ids.shape ?? [];
    if (
      !(ids?.data instanceof Int32Array) || !Number.isInteger(b) || !Number.isInteger(t) || b < 1 || t < 1 ||
      ids.data.length !== b * t
    ) {
      throw bad(
        `token ids must be {data: Int32Array, shape: [B, T]} with B·T values, got shape [${ids?.shape}]`,
        "pass [batch, tokens] ids",
      );
    }
    const V = ck.modelConfig.vocabSize;
    for (let i = 0; i < ids.data.length; i++) {
      const id = ids.data[i];
      if (id < 0 || id >= V) {
        throw bad(
          `token id ${id} at index ${i} is outside the vocabulary [0, ${V})`,
          "use ids from this model's tokenizer",
          { id, vocabSize: V },
        );
      }
    }
    const H = ck.modelConfig.hiddenSize;
    const one = b * t === 1 ? ids.data[0] : undefined;
    const cached = one === undefined ? undefined : this.#rows.get(one);
    if (cached) {
      this.#rows.delete(one!); // most recently used goes last
      this.#rows.set(one!, cached);
      return { data: cached.slice(), shape: [1, 1, H] };
    }
    const r = await worker.call("embed", { ids: ids.data, batch: b, tokens: t }, {
      signal: options.signal,
    }) as {
      data: Float32Array;
    };
    if (one !== undefined) this.#keep(one, r.data, H);
    return { data: r.data, shape: [b, t, H] };
  }

  /** Rows held in the single-token cache. */
  get cachedRows(): number {
    return this.#rows.size;
  }

  #keep(id: number, row: Float32Array, H: number): void {
    const max = Math.floor((this.#o.embedCacheBytes ?? 8 * 2 ** 20) / (4 * H));
    if (max < 1) return;
    this.#rows.set(id, row.slice());
    for (const oldest of this.#rows.keys()) {
      if (this.#rows.size <= max) break;
      this.#rows.delete(oldest);
    }
  }

  async logits(
    last: { data: Float32Array; shape: readonly [number, number] },
    options: { signal?: AbortSignal } = {},
  ): Promise<Logits> {
    const { worker, ck } = this.#live();
    const H = ck.modelConfig.hiddenSize;
    const [b, h] = last.shape ?? [];
    if (
      !(last?.data instanceof Float32Array) || !Number.isInteger(b) || b < 1 || h !== H ||
      last.data.length !== b * H
    ) {
      throw bad(
        `last hidden states must be [B, ${H}] float32, got shape [${last?.shape}]`,
        "pass the last position's hidden states",
        {
          expected: H,
        },
      );
    }
    for (let i = 0; i < last.data.length; i++) {
      if (!Number.isFinite(last.data[i])) {
        throw bad(
          `hidden states contain a non-finite value (${last.data[i]}) at flat index ${i}`,
          "check the blocks' output",
        );
      }
    }
    const r = await worker.call("logits", { hidden: last.data, batch: b }, { signal: options.signal }) as {
      data: Float32Array;
    };
    return { data: r.data, shape: [b, ck.modelConfig.vocabSize] };
  }
}

/** Creates the client head (call `start()` to load it). */
export function createClientHead(options: ClientHeadOptions): ClientHead {
  return new OnnxClientHead(options);
}
