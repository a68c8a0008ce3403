/**
 * `OnnxBlockRuntime`: the real `BlockRuntime`. `start()` resolves the checkpoint (downloading only
 * the shards of the served blocks), starts the runtime Worker and builds one graph per block
 * there. Sessions reserve their KV cache against the budget at open (`CACHE_FULL` otherwise);
 * every input is validated here, before it reaches the Worker, so a bad request never costs a
 * Worker round trip and the Worker keeps running.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { availableMemoryBytes } from "../util/available_memory.ts";
import type { EngineLoadResult } from "./engine_types.ts";
import type { KvCacheType } from "./kv_block_graph.ts";
import { resolveOrtLibrary } from "./native/ort_library_path.ts";
import type { ResolvedCheckpoint } from "./checkpoint.ts";
import { engineSource, resolveCheckpoint } from "./checkpoint.ts";
import type { DownloadProgress } from "./hub_download.ts";
import type {
  BlockRuntime,
  BlockRuntimeOptions,
  DirectEnd,
  DirectOfferOptions,
  DirectServing,
  HiddenStates,
  InferenceSession,
  OpenSessionOptions,
  RuntimeInfo,
  StepOptions,
} from "./types.ts";
import {
  checkSpan,
  closedSessionError,
  validateHidden,
  validateOpen,
  validateStep,
} from "./validate_hidden.ts";
import { WorkerClient } from "./worker_client.ts";
import type { BatchEvent } from "./worker_protocol.ts";
import { noDirectError } from "./direct_steps.ts";
import { sessionLengthLimit } from "./model_config.ts";

export interface OnnxBlockRuntimeOptions extends BlockRuntimeOptions {
  onProgress?: (p: DownloadProgress) => void;
  /** Fraction of available memory for KV caches when `cacheTokens` is 0/unset (default 0.25). */
  cacheMemoryFraction?: number;
  /** Absolute path of the onnxruntime library (default: the verified copy `ensureOrtLibrary` keeps). */
  ortLibrary?: string;
  /** KV cache element type (default float32; float16 halves the cache's memory, see docs/architecture.md). */
  kvCache?: KvCacheType;
  /** Hears the batches of steps the Worker ran (sessions per batch, queue waits; for metrics). */
  onBatch?: (e: BatchEvent) => void;
}

class OnnxSession implements InferenceSession {
  readonly id: string = crypto.randomUUID();
  position = 0;
  closed = false;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly runtime: OnnxBlockRuntime,
    readonly start: number,
    readonly end: number,
    readonly maxLength: number,
    readonly batch: number,
  ) {}

  step(hidden: HiddenStates, options: StepOptions = {}): Promise<HiddenStates> {
    const run = this.#chain.then(() => this.#step(hidden, options));
    this.#chain = run.catch(() => {});
    return run;
  }

  async #step(hidden: HiddenStates, options: StepOptions): Promise<HiddenStates> {
    if (this.closed) {
      throw closedSessionError(this.id);
    }
    const worker = this.runtime.worker();
    validateHidden(hidden, this.runtime.hiddenSize, this.batch);
    const [b, t, h] = hidden.shape;
    const { position, hypoIds } = validateStep(hidden.shape, this.position, this.maxLength, options);
    const r = await worker.call("step", {
      id: this.id,
      hidden: { data: hidden.data, shape: [b, t, h] },
      // Always explicit: if an earlier step was aborted here but still ran in the Worker, its
      // tokens are rolled back instead of silently becoming part of the past.
      startFromPosition: position,
      hypoIds,
    }, { signal: options.signal }) as { data: Float32Array; shape: number[] };
    this.position = position + t;
    return { data: r.data, shape: [b, t, h] };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.runtime.release(this);
  }

  /** The runtime Worker serves this session's steps over a direct path (see ort_worker.ts). */
  async offerDirect(options: DirectOfferOptions): Promise<DirectServing> {
    const worker = this.runtime.worker();
    if (this.runtime.info().directPort === undefined) throw noDirectError();
    let attached!: (v: boolean) => void, ended!: (e: DirectEnd) => void;
    const serving = {
      attached: new Promise<boolean>((r) => (attached = r)),
      ended: new Promise<DirectEnd>((r) => (ended = r)),
    };
    const remove = worker.onDirect(this.id, (e) => {
      switch (e.kind) {
        case "attached":
          return attached(true);
        case "lapsed":
          remove();
          return attached(false);
        case "steps":
          this.position = e.position;
          for (const [tokens, computeMs] of e.steps) options.onStep?.({ tokens, computeMs });
          return;
        case "ended":
          remove();
          attached(false); // no effect once attached
          return ended(e.end);
      }
    });
    try {
      const offer = await worker.call("direct_offer", {
        id: this.id,
        dtype: options.dtype,
        batch: this.batch,
        hiddenSize: this.runtime.hiddenSize,
      }) as DirectServing["offer"];
      return {
        offer,
        ...serving,
        cancel: (error) => void worker.call("direct_cancel", { id: this.id, error }).catch(() => {}),
      };
    } catch (err) {
      remove();
      throw err;
    }
  }
}

export class OnnxBlockRuntime implements BlockRuntime {
  readonly #o: OnnxBlockRuntimeOptions;
  readonly #log: Logger;
  #worker?: WorkerClient;
  #ckpt?: ResolvedCheckpoint;
  #starting?: Promise<void>;
  #cacheTotal = 0;
  #reserved = 0;
  #maxLength = 0;
  #directPort: number | undefined;
  #pinnedCpus: number[] | undefined;
  readonly #sessions = new Map<string, OnnxSession>();
  /** Load statistics of the last start(). */
  loadStats?: { resolveMs: number; buildMs: number; weightBytes: number };

  constructor(options: OnnxBlockRuntimeOptions) {
    this.#o = options;
    this.#log = (options.logger ?? silentLogger).child({ part: "runtime" });
  }

  get hiddenSize(): number {
    return this.#ckpt?.modelConfig.hiddenSize ?? 0;
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
    const t0 = performance.now();
    this.#log.info("resolving checkpoint", {
      model: o.model,
      revision: o.revision,
      start: o.start,
      end: o.end,
    });
    const ck = await resolveCheckpoint(o, {
      start: o.start,
      end: o.end,
      logger: this.#log,
      signal: o.signal,
      onProgress: o.onProgress,
    });
    const t1 = performance.now();
    const cfg = ck.modelConfig;
    const libraryPath = await resolveOrtLibrary(o.ortLibrary, { signal: o.signal });
    const maxLength = Math.max(1, o.maxLength ?? sessionLengthLimit(cfg));
    const worker = new WorkerClient(this.#log);
    worker.onBatch = o.onBatch;
    this.#worker = worker;
    if (o.direct) {
      // bound before the (slow) load, so a busy port fails at once
      const r = await worker.call("direct_listen", { host: o.direct.host, port: o.direct.port }) as {
        port: number;
      };
      this.#directPort = r.port;
    }
    const res = await worker.call("load", {
      ...engineSource(ck),
      start: o.start,
      end: o.end,
      weights: o.weights,
      threads: o.threads ?? 2,
      pinning: o.pinning ?? "auto",
      libraryPath,
      maxLength,
      kvCache: o.kvCache,
    }, { signal: o.signal }) as EngineLoadResult;
    this.#ckpt = ck;
    this.#maxLength = maxLength;
    const kvBytesPerToken = res.kvBytesPerToken ?? 2 * cfg.numKvHeads * cfg.headDim * 4;
    if (o.cacheTokens && o.cacheTokens > 0) this.#cacheTotal = Math.floor(o.cacheTokens);
    else {
      const avail = availableMemoryBytes() ?? 4 * 2 ** 30; // not readable: assume 4 GiB
      this.#cacheTotal = Math.max(0, Math.floor((avail * (o.cacheMemoryFraction ?? 0.25)) / kvBytesPerToken));
    }
    this.loadStats = { resolveMs: t1 - t0, buildMs: res.loadMs, weightBytes: res.weightBytes };
    this.#pinnedCpus = res.pinnedCpus;
    this.#log.info("blocks ready", {
      model: o.model,
      blocks: `${o.start}:${o.end}`,
      weights: o.weights,
      loadMs: Math.round(performance.now() - t0),
      weightMB: Math.round(res.weightBytes / 2 ** 20),
      cacheTokens: this.#cacheTotal,
      hugePages: res.hugePages && (res.hugePages.skipped ??
        `${Math.round(res.hugePages.bytes / 2 ** 20)} MB in ${res.hugePages.regions} ranges, ${
          Math.round(res.hugePages.ms)
        } ms`),
      pinning: res.pinning,
    });
  }

  async stop(): Promise<void> {
    const w = this.#worker;
    this.#worker = undefined;
    this.#starting = undefined;
    for (const s of this.#sessions.values()) s.closed = true;
    this.#sessions.clear();
    this.#reserved = 0;
    this.#directPort = undefined;
    this.#pinnedCpus = undefined;
    await w?.dispose();
  }

  async rebindDirect(port: number): Promise<number> {
    if (this.#directPort === undefined) throw noDirectError();
    const r = await this.worker().call("direct_rebind", { port }) as { port: number };
    this.#directPort = r.port;
    return r.port;
  }

  /** @internal The live worker or NOT_RUNNING. */
  worker(): WorkerClient {
    if (!this.#worker || !this.#ckpt) {
      throw new RuntimeError("NOT_RUNNING", `runtime for ${this.#o.model} is not running`, {
        hint: "call start() first (or it was stopped)",
      });
    }
    return this.#worker;
  }

  info(): RuntimeInfo {
    const cfg = this.#ckpt?.modelConfig;
    return {
      modelId: this.#o.model,
      revision: this.#ckpt?.revision,
      modelType: cfg?.modelType ?? "llama",
      hiddenSize: cfg?.hiddenSize ?? 0,
      numBlocks: cfg?.numLayers ?? 0,
      start: this.#o.start,
      end: this.#o.end,
      weights: this.#o.weights,
      cacheTokensTotal: this.#cacheTotal,
      cacheTokensLeft: this.#cacheTotal - this.#reserved,
      maxLength: this.#maxLength,
      openSessions: this.#sessions.size,
      ...(this.#directPort === undefined ? {} : { directPort: this.#directPort }),
      ...(this.#pinnedCpus ? { pinnedCpus: [...this.#pinnedCpus] } : {}),
    };
  }

  #checkSpan(start: number, end: number): void {
    checkSpan(start, end, this.#o);
  }

  async openSession(options: OpenSessionOptions): Promise<InferenceSession> {
    const worker = this.worker();
    const { start, end, maxLength, batch } = options;
    const need = validateOpen(options, {
      served: this.#o,
      maxLength: this.#maxLength,
      cacheLeft: this.#cacheTotal - this.#reserved,
    });
    this.#reserved += need;
    const s = new OnnxSession(this, start, end, maxLength, batch);
    try {
      await worker.call("open", { id: s.id, start, end, maxLength, batch }, { signal: options.signal });
    } catch (err) {
      this.#reserved -= need;
      throw err;
    }
    this.#sessions.set(s.id, s);
    return s;
  }

  /**
   * @internal The Worker's open sessions and unreleased native objects per kind, after a garbage
   * collection where the process exposes one (`--v8-flags=--expose-gc`). For leak checks.
   */
  async engineStats(): Promise<{ sessions: number; native?: Record<string, number>; heapBytes: number }> {
    return await this.worker().call("stats", {}) as {
      sessions: number;
      native?: Record<string, number>;
      heapBytes: number;
    };
  }

  getSession(id: string): InferenceSession | undefined {
    return this.#sessions.get(id);
  }

  /** @internal */
  async release(s: OnnxSession): Promise<void> {
    if (!this.#sessions.delete(s.id)) return;
    this.#reserved -= s.batch * s.maxLength * (s.end - s.start);
    try {
      await this.#worker?.call("close", { id: s.id });
    } catch {
      // worker gone: nothing to free
    }
  }

  async forward(
    start: number,
    end: number,
    hidden: HiddenStates,
    options: { signal?: AbortSignal } = {},
  ): Promise<HiddenStates> {
    const worker = this.worker();
    this.#checkSpan(start, end);
    validateHidden(hidden, this.hiddenSize);
    const [b, t, h] = hidden.shape;
    if (t > this.#maxLength) {
      throw new RuntimeError("TOO_LONG", `forward of ${t} tokens exceeds the limit ${this.#maxLength}`, {
        hint: "split the sequence into chunks",
        details: { tokens: t, limit: this.#maxLength },
      });
    }
    const r = await worker.call(
      "forward",
      { start, end, hidden: { data: hidden.data, shape: [b, t, h] } },
      { signal: options.signal },
    ) as {
      data: Float32Array;
    };
    return { data: r.data, shape: [b, t, h] };
  }
}

/** Creates the onnxruntime block runtime (call `start()` to load it). */
export function createBlockRuntime(
  options: OnnxBlockRuntimeOptions,
): BlockRuntime & { loadStats?: OnnxBlockRuntime["loadStats"] } {
  return new OnnxBlockRuntime(options);
}
