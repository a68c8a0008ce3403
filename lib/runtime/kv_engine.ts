/**
 * `KvEngine`: the runtime's onnxruntime side, through the C API (native/ort_api.ts). One ORT
 * session per served block (kv_block_graph.ts) and the head graphs when asked. Every inference
 * session gets, at open, one K and one V cache per block — a slot of a slab for a one-row session
 * (kv_slab.ts), buffers of `[B, KVH, maxLength, D]` of its own otherwise; float32, or float16 on
 * request — and the graphs write each step's new rows into them in place and read the past where
 * it lies, so a decode step copies nothing proportional to the context and allocates nothing
 * (docs/architecture.md, "Runtime engine").
 *
 * It runs inside the runtime Worker (ort_worker.ts) — every call is synchronous FFI — but has no
 * Worker code itself, so tests can drive it directly. Inputs are assumed validated by the caller
 * (OnnxBlockRuntime); the engine re-checks what protects its own memory.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import { pinEngineThread, pinnedWhile, pinThisThread } from "./_cpu_affinity.ts";
import { type CacheArray, CachePool } from "./kv_cache_pool.ts";
import { engineSettings, KvGraphs } from "./kv_graphs.ts";
import { type KvSession, prepareStep, releaseSession } from "./kv_session.ts";
import { CacheSlabs, slabLength, slotRuns } from "./kv_slab.ts";
import { pageRelease } from "./_page_release.ts";
import { extraInputs, sessionUnits, slotUnit, type UnitContext } from "./attn_units.ts";
import { adviseHugePages } from "./_huge_pages.ts";
import type {
  Engine,
  EngineLoadRequest,
  EngineLoadResult,
  EngineTensor,
  StepRequest,
  StepResult,
} from "./engine_types.ts";
import { cacheHeadDim, type KvCacheType, qkvWidth } from "./kv_block_graph.ts";
import { type AttnUnit, runSpan, ScratchCache, SpanScratch } from "./kv_batch_step.ts";
import { type ModelConfig, parseModelConfig, sessionLengthLimit } from "./model_config.ts";
import { OrtApi, type OrtSession, type OrtTensor, TensorType } from "./native/ort_api.ts";
import { CheckpointTensors } from "./safetensors.ts";

/** A step that will run: its session, its start position and tokens, its input rows. */
interface Prepared {
  n: number;
  s: KvSession;
  p: number;
  t: number;
  hidden: Float32Array;
}

/** `f()` as a promise: a throw becomes a rejection (the Worker's callers expect promises). */
function settle<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err);
  }
}

/**
 * Bytes of closed sessions' cache buffers kept for reuse, and again of their slab slots kept
 * committed. Allocating and freeing them for every session made the allocator's heap grow over
 * thousands of sessions (docs/benchmarks.md, "Runtime engine": the RSS cycle); reused, they cost
 * no allocation at all.
 */
const POOL_BYTES = 64 * 2 ** 20;

const engineError = (message: string, cause?: unknown) =>
  new RuntimeError("ENGINE_FAILED", message, {
    hint: "this is a bug or an out-of-memory condition; see the cause",
    cause,
  });

export class KvEngine implements Engine {
  cfg?: ModelConfig;
  #api?: OrtApi;
  /** The blocks' and the head's ORT sessions, and the tensors they share (kv_graphs.ts). */
  readonly #g = new KvGraphs();
  #sessions = new Map<string, KvSession>();
  #cacheType: KvCacheType = "float32";
  #maxLength = 0;
  /** Cache slots of one-row sessions, side by side so that their decode steps share attention calls. */
  #slabs = new CacheSlabs(
    (n) => this.#cacheType === "float16" ? new Uint16Array(n) : new Float32Array(n),
    { keepBytes: POOL_BYTES, release: pageRelease() },
  );
  /** Buffers of passes over the span, by stacked rows (kv_batch_step.ts). */
  readonly #scratch = new ScratchCache((n) => this.#makeScratch(n));
  /** Cache buffers of closed sessions, for the next ones (kv_cache_pool.ts). */
  #pool = new CachePool(
    POOL_BYTES,
    (n) => this.#cacheType === "float16" ? new Uint16Array(n) : new Float32Array(n),
  );

  /** The loaded library (after `load`). */
  get api(): OrtApi {
    if (!this.#api) throw engineError("the engine is not loaded");
    return this.#api;
  }

  /** Element type of the KV caches. */
  get cacheType(): KvCacheType {
    return this.#cacheType;
  }

  async load(req: EngineLoadRequest): Promise<EngineLoadResult> {
    const t0 = performance.now();
    if (!req.libraryPath) {
      throw new RuntimeError("ENGINE_FAILED", "no onnxruntime library path was given to the engine", {
        hint: "internal: the runtime resolves the library before it starts the engine",
      });
    }
    const api = OrtApi.load(req.libraryPath);
    this.#api = api;
    const cfg = parseModelConfig(req.config, req.generation ?? {});
    this.cfg = cfg;
    this.#cacheType = req.kvCache ?? "float32";
    this.#maxLength = Math.max(1, req.maxLength ?? sessionLengthLimit(cfg));
    const weightMap = new Map(Object.entries(req.weightMap));
    const tensors = new CheckpointTensors(weightMap, (f) => {
      const p = req.paths[f];
      if (!p) {
        throw new RuntimeError("BAD_CHECKPOINT", `shard ${f} was not fetched`, {
          hint: "internal: the shard list is wrong",
        });
      }
      return p;
    });
    const threads = req.threads ?? 2;
    // One pool for the split graphs (a batch runs three graphs per block, and waking a pool of each
    // graph's own cost a step a fifth of its time); the joined graphs of lone steps have their own
    // (kv_graphs.ts; docs/benchmarks.md).
    api.globalThreads = threads;
    const pin = req.pinning === undefined ? undefined : pinEngineThread(req.pinning, threads);
    try {
      if (pin?.plan?.workers.length) {
        // the pool's threads are made with the environment and inherit this thread's CPUs
        pinThisThread(pin.plan.workers);
        try {
          api.env();
        } finally {
          pinThisThread(pin.plan.caller);
        }
      }
      const plan = pin?.plan;
      await this.#g.load(api, req, cfg, tensors, {
        cacheType: this.#cacheType,
        maxLength: this.#maxLength,
        settings: engineSettings(threads),
        ownPool: plan?.workers.length ? (make) => pinnedWhile(plan, make) : undefined,
      });
    } catch (err) {
      await this.dispose();
      throw err;
    } finally {
      await tensors.close();
    }
    const { weightBytes, headBytes } = this.#g;
    const above = req.hugePagesAbove ?? 64 * 2 ** 20;
    const hugePages = above !== false && weightBytes + headBytes >= above ? adviseHugePages() : undefined;
    return {
      loadMs: performance.now() - t0,
      weightBytes,
      unpackedBlocks: this.#g.unpackedBlocks,
      hugePages,
      pinning: pin?.said,
      ...(pin?.plan ? { pinnedCpus: [pin.plan.caller, ...pin.plan.workers] } : {}),
      kvBytesPerToken: this.kvBytesPerToken,
      library: { path: api.path, version: api.version },
    };
  }

  /** Bytes one cache token (K and V of one position of one block) takes. */
  get kvBytesPerToken(): number {
    const c = this.cfg;
    if (!c) return 0;
    return 2 * c.numKvHeads * cacheHeadDim(c) * (this.#cacheType === "float16" ? 2 : 4);
  }

  #cacheTensor(a: CacheArray, shape: number[]): OrtTensor {
    return this.api.tensor(a, shape, this.#cacheType === "float16" ? TensorType.FLOAT16 : TensorType.FLOAT);
  }

  /** A scratch for `n` stacked token rows (kv_batch_step.ts). */
  #makeScratch(n: number): SpanScratch {
    const c = this.cfg!;
    return new SpanScratch(this.api, n, c.hiddenSize, qkvWidth(c), c.numHeads * c.headDim);
  }

  /** Runs the span over `units`, their rows copied from `inputs` in order; returns the output rows. */
  #pass(start: number, end: number, units: AttnUnit[], inputs: Float32Array[]): Float32Array {
    const H = this.cfg!.hiddenSize;
    const n = inputs.reduce((a, x) => a + x.length, 0) / H;
    const scratch = this.#scratch.take(n);
    try {
      let at = 0;
      for (const x of inputs) {
        scratch.input.set(x, at);
        at += x.length;
      }
      return runSpan(this.api, this.#g, start, end, units, scratch).slice();
    } finally {
      this.#scratch.give(scratch);
    }
  }

  /** Stateless pass through blocks [start, end) from position 0 (a scratch cache of T rows). */
  forward(start: number, end: number, hidden: EngineTensor): Promise<EngineTensor> {
    return settle(() => this.#forward(start, end, hidden));
  }

  #forward(start: number, end: number, hidden: EngineTensor): EngineTensor {
    const cfg = this.cfg!;
    const [b, t, H] = hidden.shape;
    for (let i = start; i < end; i++) this.#g.block(i);
    const api = this.api;
    const kvShape = [b, cfg.numKvHeads, t, cacheHeadDim(cfg)];
    const n = kvShape.reduce((x, y) => x * y, 1);
    const owned: OrtTensor[] = [];
    const keep = (x: OrtTensor) => (owned.push(x), x);
    const scratch = [this.#pool.take(n), this.#pool.take(n)];
    try {
      const k = keep(this.#cacheTensor(scratch[0], kvShape));
      const v = keep(this.#cacheTensor(scratch[1], kvShape));
      const seqlens = keep(api.tensor(new Int32Array(b).fill(t - 1), [b], TensorType.INT32));
      const total = keep(api.tensor(Int32Array.of(t), [], TensorType.INT32));
      const extra = extraInputs(this.#unitContext(keep), seqlens, total, t, t);
      const unit: AttnUnit = { rows: b, tokens: t, offset: 0, k: () => k, v: () => v, extra };
      return { data: this.#pass(start, end, [unit], [hidden.data]), shape: [b, t, H] };
    } finally {
      for (const o of owned) o.release();
      for (const a of scratch) this.#pool.give(a);
    }
  }

  /**
   * Opens a session: its caches for the whole `maxLength` are allocated now — a slot of a slab
   * (kv_slab.ts) for a one-row session, buffers of its own otherwise.
   */
  open(id: string, start: number, end: number, maxLength: number, batch: number): void {
    const cfg = this.cfg!;
    for (let i = start; i < end; i++) this.#g.block(i);
    if (this.#sessions.has(id)) throw engineError(`session ${id} is already open`);
    if (maxLength > this.#maxLength) {
      throw new RuntimeError("TOO_LONG", `maxLength ${maxLength} exceeds the engine's ${this.#maxLength}`, {
        hint: "open the session with a smaller maxLength",
      });
    }
    const api = this.api;
    const length = batch === 1 ? slabLength(maxLength, this.#maxLength) : maxLength;
    const shape = [batch, cfg.numKvHeads, length, cacheHeadDim(cfg)];
    const n = shape.reduce((x, y) => x * y, 1);
    const s: Partial<KvSession> & { kt: OrtTensor[]; vt: OrtTensor[] } = {
      start,
      end,
      batch,
      maxLength,
      position: 0,
      k: [],
      v: [],
      kt: [],
      vt: [],
      slot: batch === 1 ? this.#slabs.take(n) : undefined,
    };
    try {
      for (let j = 0; j < end - start; j++) {
        const { k, v } = s.slot
          ? this.#slabs.caches(s.slot, start + j)
          : { k: this.#pool.take(n), v: this.#pool.take(n) };
        s.k!.push(k);
        s.v!.push(v);
        s.kt.push(this.#cacheTensor(k, shape));
        s.vt.push(this.#cacheTensor(v, shape));
      }
      s.seqlens = new Int32Array(batch);
      s.total = new Int32Array(1);
      s.seqlensT = api.tensor(s.seqlens, [batch], TensorType.INT32);
      s.totalT = api.tensor(s.total, [], TensorType.INT32);
      if (this.#g.slopes) s.bias = new Float32Array(this.#g.slopes.length * maxLength);
    } catch (err) {
      this.#free(s);
      throw err;
    }
    this.#sessions.set(id, s as KvSession);
  }

  /** Releases a session's tensors and gives its caches back. */
  #free(s: Partial<KvSession>): void {
    releaseSession(s);
    if (s.slot) this.#slabs.give(s.slot);
    else for (const a of [...s.k ?? [], ...s.v ?? []]) this.#pool.give(a);
  }

  close(id: string): boolean {
    const s = this.#sessions.get(id);
    if (!s) return false;
    this.#sessions.delete(id);
    this.#free(s);
    return true;
  }

  /** Tokens in a session's cache (`fallback` for an unknown session when given; else UNKNOWN_SESSION). */
  positionOf(id: string, fallback?: number): number {
    const c = this.#sessions.get(id);
    if (!c && fallback !== undefined) return fallback;
    return this.#session(id).position;
  }

  /** @internal For tests: a session's K and V buffers of block `i` (the memory the graphs write). */
  cacheOf(id: string, i: number): { k: CacheArray; v: CacheArray } {
    const s = this.#session(id);
    return { k: s.k[i - s.start], v: s.v[i - s.start] };
  }

  /** Native objects not yet released, per kind. */
  native(): Record<string, number> {
    return { ...(this.#api?.live ?? {}) };
  }

  /** Open sessions. */
  get sessions(): number {
    return this.#sessions.size;
  }

  #session(id: string): KvSession {
    const c = this.#sessions.get(id);
    if (!c) {
      throw new RuntimeError("UNKNOWN_SESSION", `session ${id} is not open`, {
        hint: "open a new session (and replay the history)",
        details: { sessionId: id },
      });
    }
    return c;
  }

  /**
   * One inference step: optional rollback to `startFromPosition`, optional batch reorder by
   * `hypoIds`, then the span's blocks on hidden [B, T, H]; the cache advances by T.
   */
  step(
    id: string,
    hidden: EngineTensor,
    startFromPosition?: number,
    hypoIds?: number[],
  ): Promise<EngineTensor> {
    return settle(() => {
      const [r] = this.#stepMany([{ id, hidden, startFromPosition, hypoIds }]);
      if (!r.ok) throw r.error;
      return r.value;
    });
  }

  /**
   * Steps of several sessions (distinct ids) in one pass of the weights (kv_batch_step.ts). Each
   * answer is its own: a step whose input is refused fails alone; the others still run.
   */
  stepMany(reqs: readonly StepRequest[]): Promise<StepResult[]> {
    return settle(() => this.#stepMany(reqs));
  }

  #stepMany(reqs: readonly StepRequest[]): StepResult[] {
    const out: StepResult[] = reqs.map(() => ({ ok: false, error: undefined }));
    const groups = new Map<string, { span: [number, number]; steps: Prepared[] }>();
    const owned: OrtTensor[] = [];
    const keep = (x: OrtTensor) => (owned.push(x), x);
    const seen = new Set<string>();
    try {
      reqs.forEach((req, n) => {
        try {
          const { s, p, t } = this.#prepare(req, seen);
          const key = `${s.start}-${s.end}`;
          let g = groups.get(key);
          if (!g) groups.set(key, g = { span: [s.start, s.end], steps: [] });
          g.steps.push({ n, s, p, t, hidden: req.hidden.data });
        } catch (error) {
          out[n] = { ok: false, error };
        }
      });
      const H = this.cfg!.hiddenSize;
      for (const { span: [start, end], steps } of groups.values()) {
        // decode steps of neighbouring slab slots share one attention call (kv_slab.ts)
        const placed: { x: Prepared; at: number }[] = [];
        let y: Float32Array;
        try {
          const units: AttnUnit[] = [], c = this.#unitContext(keep);
          let at = 0;
          for (const run of slotRuns(steps.map((x) => ({ slot: x.s.slot, tokens: x.t })))) {
            const xs = run.map((i) => steps[i]);
            units.push(
              ...(xs.length === 1 ? sessionUnits(c, xs[0].s, xs[0].p, xs[0].t, at) : [slotUnit(c, xs, at)]),
            );
            for (const x of xs) {
              placed.push({ x, at });
              at += x.s.batch * x.t;
            }
          }
          y = this.#pass(start, end, units, placed.map(({ x }) => x.hidden));
        } catch (error) {
          for (const x of steps) out[x.n] = { ok: false, error };
          continue;
        }
        for (const { x, at } of placed) {
          x.s.position = x.p + x.t;
          const rows = x.s.batch * x.t;
          out[x.n] = {
            ok: true,
            value: { data: y.slice(at * H, (at + rows) * H), shape: [x.s.batch, x.t, H] },
          };
        }
      }
      return out;
    } finally {
      for (const o of owned) o.release();
    }
  }

  /** What `slotUnit` builds a unit from; its new tensors go to `keep`. */
  #unitContext(keep: (x: OrtTensor) => OrtTensor): UnitContext {
    const cfg = this.cfg!;
    return {
      api: this.api,
      slabs: this.#slabs,
      kvHeads: cfg.numKvHeads,
      headDim: cacheHeadDim(cfg),
      rope: this.#g.rope,
      slopes: this.#g.slopes,
      cacheTensor: (a, shape) => this.#cacheTensor(a, shape),
      keep,
    };
  }

  /** Checks one step against its session, then applies its rollback and reorder (kv_session.ts). */
  #prepare(req: StepRequest, seen: Set<string>): { s: KvSession; p: number; t: number } {
    const cfg = this.cfg!;
    return prepareStep(this.#session(req.id), req, seen, cfg.hiddenSize, cfg.numKvHeads, cacheHeadDim(cfg));
  }

  /** Token ids [B, T] → hidden [B, T, H]. */
  embed(ids: Int32Array, b: number, t: number): Promise<EngineTensor> {
    return settle(() =>
      this.#runHead(
        this.#g.embed,
        (api) => api.tensor(BigInt64Array.from(ids, (v) => BigInt(v)), [b, t], TensorType.INT64),
        [b, t, this.cfg!.hiddenSize],
      )
    );
  }

  /** Last hidden [B, H] → logits [B, vocab]. */
  logits(hidden: Float32Array, b: number): Promise<EngineTensor> {
    return settle(() =>
      this.#runHead(
        this.#g.logits,
        (api) => api.tensor(hidden, [b, this.cfg!.hiddenSize], TensorType.FLOAT),
        [
          b,
          this.cfg!.vocabSize,
        ],
      )
    );
  }

  /** Runs a head graph on the input `input` makes into a fresh output of `shape`. */
  #runHead(
    session: OrtSession | undefined,
    input: (api: OrtApi) => OrtTensor,
    shape: number[],
  ): EngineTensor {
    if (!session) throw engineError("the head is not loaded");
    const api = this.api;
    const x = input(api);
    const y = api.tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, TensorType.FLOAT);
    try {
      api.run(session, [x], [y]);
      return { data: y.data as Float32Array, shape };
    } finally {
      x.release();
      y.release();
    }
  }

  /** Closes every session and releases every native object. */
  dispose(): Promise<void> {
    for (const id of [...this.#sessions.keys()]) this.close(id);
    this.#scratch.clear();
    this.#g.release();
    this.#pool.clear();
    this.#slabs.clear();
    this.#api?.dispose();
    return Promise.resolve();
  }
}
