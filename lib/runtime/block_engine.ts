/**
 * `BlockEngine`: the onnxruntime side of the runtime. It builds one ORT session per served block
 * (and the head graphs when asked), keeps every inference session's KV caches in JS
 * (`Float32Array [B, capacity, KV]` per block for K and V, grown by reallocation), passes the
 * past as a zero-copy prefix view (batch 1) and appends the new K/V the graph returns.
 *
 * It runs inside the runtime Worker (ort_worker.ts) but has no Worker code itself, so tests can
 * drive it directly. Inputs are assumed validated by the caller (OnnxBlockRuntime) — the engine
 * re-checks only what protects its own memory.
 * @module
 */
import * as ort from "onnxruntime-node";
import { RuntimeError } from "../errors.ts";
import type { CpuPinning } from "../util/cpu_list.ts";
import { allowedCpus, ortAffinities, type PinPlan, pinThisThread, planPinning } from "./_cpu_affinity.ts";
import { adviseHugePages } from "./_huge_pages.ts";
import { blockTensorNames, buildBlockGraph } from "./block_graph.ts";
import { buildEmbedGraph, buildLogitsGraph, headTensorNames } from "./head_graph.ts";
import type { ModelConfig } from "./model_config.ts";
import { parseModelConfig } from "./model_config.ts";
import type { EncodedModel } from "./onnx_graph.ts";
import { CheckpointTensors } from "./safetensors.ts";
import type { Engine, EngineLoadRequest, EngineLoadResult, EngineTensor } from "./engine_types.ts";

interface Cache {
  start: number;
  end: number;
  batch: number;
  maxLength: number;
  position: number;
  capacity: number;
  /** Per block: K and V, each [batch, capacity, KV]. */
  k: Float32Array[];
  v: Float32Array[];
}

const engineError = (message: string, cause?: unknown) =>
  new RuntimeError("ENGINE_FAILED", message, {
    hint: "this is a bug or an out-of-memory condition; see the cause",
    cause,
  });

export class BlockEngine implements Engine {
  cfg?: ModelConfig;
  #blocks = new Map<number, ort.InferenceSession>();
  #embed?: ort.InferenceSession;
  #logits?: ort.InferenceSession;
  #caches = new Map<string, Cache>();
  #kvDim = 0;

  /**
   * Intra-op threads spin while a run is in progress (an op's work is handed to an awake thread
   * instead of waking a sleeping one for every parallel section), and `force_spinning_stop` parks
   * them as soon as the run returns, so the idle pools of the other sessions (one per block) and of
   * other processes never compete for the cores. Measured (hidden 1024, fp32, 2 threads, a noisy
   * 2-core VM): a step through 12 blocks in the runtime Worker 20.5 → 15.2 and 24.4 → 22.2 ms in
   * two A/B runs, 4 blocks 9.7 → 8.2 ms; after 25 ms idle (a swarm server's situation) no clear
   * difference (±20 % noise). Spinning without the stop was 4–6 ms per block (every block's pool
   * spinning at once) — the 5.5× slowdown RUNTIME.md warns about. With a pinning plan the pool
   * threads get their CPUs here (`intra_op_thread_affinities`); the calling thread is pinned in `load`.
   */
  #sessionOptions(threads: number, pin?: PinPlan): ort.InferenceSession.SessionOptions {
    const affinity = pin?.workers.length ? { intra_op_thread_affinities: ortAffinities(pin) } : {};
    return {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: "sequential",
      enableCpuMemArena: false,
      graphOptimizationLevel: "all",
      extra: {
        session: {
          intra_op: { allow_spinning: "1" },
          force_spinning_stop: "1",
          inter_op: { allow_spinning: "0" },
          ...affinity,
        },
      },
    };
  }

  async load(req: EngineLoadRequest): Promise<EngineLoadResult> {
    const t0 = performance.now();
    const cfg = parseModelConfig(req.config, req.generation ?? {});
    this.cfg = cfg;
    this.#kvDim = cfg.numKvHeads * cfg.headDim;
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
    const pin = req.pinning === undefined ? undefined : this.#pin(req.pinning, threads);
    const opts = this.#sessionOptions(threads, pin?.plan);
    let weightBytes = 0, headBytes = 0;
    try {
      if (req.start !== undefined && req.end !== undefined) {
        for (let i = req.start; i < req.end; i++) {
          const t = new Map<string, { shape: readonly number[]; data: Float32Array }>();
          for (const n of blockTensorNames(cfg)) t.set(n, await tensors.read(`${req.blockPrefix}${i}.${n}`));
          const graph = buildBlockGraph(cfg, t, req.weights);
          weightBytes += graph.weightBytes;
          this.#blocks.set(
            i,
            await this.#create(graph.encode({ externalAbove: 2 ** 20 }), opts, `block ${i}`),
          );
        }
      }
      if (req.head) {
        const names = headTensorNames(cfg, req.headPrefix, (n) => weightMap.has(n));
        const t = new Map<string, { shape: readonly number[]; data: Float32Array }>();
        for (const [role, name] of Object.entries(names)) {
          const x = await tensors.read(name);
          t.set(role, x);
          headBytes += x.data.byteLength;
        }
        this.#embed = await this.#create(buildEmbedGraph(cfg, t).encode(), opts, "embeddings");
        this.#logits = await this.#create(buildLogitsGraph(cfg, t).encode(), opts, "LM head");
      }
    } finally {
      await tensors.close();
    }
    const above = req.hugePagesAbove ?? 64 * 2 ** 20;
    const hugePages = above !== false && weightBytes + headBytes >= above ? adviseHugePages() : undefined;
    return {
      loadMs: performance.now() - t0,
      weightBytes,
      hugePages,
      pinning: pin?.said,
      ...(pin?.plan ? { pinnedCpus: [pin.plan.caller, ...pin.plan.workers] } : {}),
    };
  }

  /** Pins this thread as `setting` decides for `threads` threads; the plan for the pool threads. */
  #pin(setting: CpuPinning, threads: number): { plan?: PinPlan; said: string } {
    const allowed = allowedCpus();
    const why = Array.isArray(allowed) ? "" : ` (${allowed.unknown})`;
    const refused = (message: string) =>
      new RuntimeError("BAD_PINNING", message, {
        hint: "set CPU_PINNING to auto, off, or CPUs this process may use (see `taskset -p $$`)",
      });
    let decision;
    try {
      decision = planPinning(threads, setting, Array.isArray(allowed) ? allowed : undefined);
    } catch (err) {
      throw refused((err as Error).message + why);
    }
    if ("skipped" in decision) return { said: decision.skipped + why };
    const { plan } = decision;
    try {
      pinThisThread(plan.caller);
    } catch (err) {
      throw refused((err as Error).message);
    }
    const pool = plan.workers.length ? `, pool CPU ${plan.workers.join(",")}` : "";
    return { plan, said: `caller CPU ${plan.caller}${pool}` };
  }

  /** Creates an ORT session; weights above protobuf's 2 GiB limit travel as in-memory external data. */
  async #create(
    enc: EncodedModel,
    opts: ort.InferenceSession.SessionOptions,
    what: string,
  ): Promise<ort.InferenceSession> {
    try {
      const withData = enc.externalData.length ? { ...opts, externalData: enc.externalData } : opts;
      return await ort.InferenceSession.create(enc.model, withData);
    } catch (cause) {
      throw engineError(`onnxruntime refused the ${what} graph: ${(cause as Error).message}`, cause);
    }
  }

  #block(i: number): ort.InferenceSession {
    const s = this.#blocks.get(i);
    if (!s) {
      throw new RuntimeError("BAD_SPAN", `block ${i} is not loaded`, {
        hint: "request a span this runtime serves",
      });
    }
    return s;
  }

  /** Runs one block on hidden [B,T,H] after a past [B,P,KV]; returns output and the new K/V. */
  async #runBlock(
    i: number,
    hidden: Float32Array,
    b: number,
    t: number,
    pastK: Float32Array,
    pastV: Float32Array,
    p: number,
  ) {
    const H = this.cfg!.hiddenSize, KV = this.#kvDim;
    let r: ort.InferenceSession.OnnxValueMapType;
    try {
      r = await this.#block(i).run({
        hidden: new ort.Tensor("float32", hidden, [b, t, H]),
        past_key: new ort.Tensor("float32", pastK, [b, p, KV]),
        past_value: new ort.Tensor("float32", pastV, [b, p, KV]),
      });
    } catch (cause) {
      if (cause instanceof RuntimeError) throw cause;
      throw engineError(`block ${i} failed: ${(cause as Error).message}`, cause);
    }
    return {
      out: r.hidden_out.data as Float32Array,
      k: r.key.data as Float32Array,
      v: r.value.data as Float32Array,
    };
  }

  /** Stateless pass through blocks [start, end) from position 0. */
  async forward(start: number, end: number, hidden: EngineTensor): Promise<EngineTensor> {
    const [b, t] = hidden.shape;
    const empty = new Float32Array(0);
    let x = hidden.data;
    for (let i = start; i < end; i++) x = (await this.#runBlock(i, x, b, t, empty, empty, 0)).out;
    return { data: x, shape: [...hidden.shape] };
  }

  /** Registers a session's cache (memory is allocated lazily, on first use, and grows). */
  open(id: string, start: number, end: number, maxLength: number, batch: number): void {
    for (let i = start; i < end; i++) this.#block(i);
    this.#caches.set(id, { start, end, batch, maxLength, position: 0, capacity: 0, k: [], v: [] });
  }

  close(id: string): boolean {
    return this.#caches.delete(id);
  }

  /** Tokens in a session's cache (`fallback` for an unknown session when given; else UNKNOWN_SESSION). */
  positionOf(id: string, fallback?: number): number {
    const c = this.#caches.get(id);
    if (!c && fallback !== undefined) return fallback;
    return this.#cache(id).position;
  }

  /** Open cache ids. */
  get sessions(): number {
    return this.#caches.size;
  }

  #cache(id: string): Cache {
    const c = this.#caches.get(id);
    if (!c) {
      throw new RuntimeError("UNKNOWN_SESSION", `session ${id} is not open`, {
        hint: "open a new session (and replay the history)",
        details: { sessionId: id },
      });
    }
    return c;
  }

  #ensureCapacity(c: Cache, need: number): void {
    if (need <= c.capacity) return;
    const KV = this.#kvDim;
    const cap = Math.min(c.maxLength, Math.max(need, c.capacity * 2, 16));
    const grow = (old: Float32Array | undefined) => {
      const buf = new Float32Array(c.batch * cap * KV);
      if (old) {
        for (let r = 0; r < c.batch; r++) {
          buf.set(old.subarray(r * c.capacity * KV, (r * c.capacity + c.position) * KV), r * cap * KV);
        }
      }
      return buf;
    };
    for (let j = 0; j < c.end - c.start; j++) {
      c.k[j] = grow(c.k[j]);
      c.v[j] = grow(c.v[j]);
    }
    c.capacity = cap;
  }

  /** The past [B, P, KV] of one buffer: a zero-copy view for batch 1, a gathered copy otherwise. */
  #past(c: Cache, buf: Float32Array, p: number): Float32Array {
    const KV = this.#kvDim;
    if (c.batch === 1) return buf.subarray(0, p * KV);
    const out = new Float32Array(c.batch * p * KV);
    for (let r = 0; r < c.batch; r++) {
      out.set(buf.subarray(r * c.capacity * KV, (r * c.capacity + p) * KV), r * p * KV);
    }
    return out;
  }

  #append(c: Cache, buf: Float32Array, fresh: Float32Array, p: number, t: number): void {
    const KV = this.#kvDim;
    for (let r = 0; r < c.batch; r++) {
      buf.set(fresh.subarray(r * t * KV, (r + 1) * t * KV), (r * c.capacity + p) * KV);
    }
  }

  /**
   * One inference step: optional rollback to `startFromPosition`, optional batch reorder by
   * `hypoIds`, then the span's blocks on hidden [B, T, H]; the cache advances by T.
   */
  async step(
    id: string,
    hidden: EngineTensor,
    startFromPosition?: number,
    hypoIds?: number[],
  ): Promise<EngineTensor> {
    const c = this.#cache(id);
    const [b, t] = hidden.shape;
    if (b !== c.batch) {
      throw new RuntimeError("BAD_INPUT", `batch ${b} ≠ session batch ${c.batch}`, {
        hint: "send the session's batch size",
      });
    }
    let p = c.position;
    if (startFromPosition !== undefined) {
      if (startFromPosition < 0 || startFromPosition > p) {
        throw new RuntimeError("BAD_INPUT", `startFromPosition ${startFromPosition} is outside [0, ${p}]`, {
          hint: "roll back only to a position already in the cache",
        });
      }
      p = startFromPosition;
    }
    if (p + t > c.maxLength) {
      throw new RuntimeError(
        "TOO_LONG",
        `step of ${t} tokens at position ${p} exceeds the session's maxLength ${c.maxLength}`,
        {
          hint: "open the session with a larger maxLength",
        },
      );
    }
    c.position = p;
    this.#ensureCapacity(c, p + t);
    if (hypoIds && c.capacity > 0) {
      const KV = this.#kvDim;
      const reorder = (buf: Float32Array) => {
        const src = buf.slice(0, c.batch * c.capacity * KV);
        for (let r = 0; r < c.batch; r++) {
          const from = hypoIds[r];
          buf.set(src.subarray(from * c.capacity * KV, (from * c.capacity + p) * KV), r * c.capacity * KV);
        }
      };
      for (let j = 0; j < c.end - c.start; j++) {
        reorder(c.k[j]);
        reorder(c.v[j]);
      }
    }
    let x = hidden.data;
    for (let i = c.start; i < c.end; i++) {
      const j = i - c.start;
      const r = await this.#runBlock(i, x, b, t, this.#past(c, c.k[j], p), this.#past(c, c.v[j], p), p);
      this.#append(c, c.k[j], r.k, p, t);
      this.#append(c, c.v[j], r.v, p, t);
      x = r.out;
    }
    c.position = p + t;
    return { data: x, shape: [...hidden.shape] };
  }

  /** Token ids [B, T] → hidden [B, T, H]. */
  async embed(ids: Int32Array, b: number, t: number): Promise<EngineTensor> {
    if (!this.#embed) throw engineError("the head is not loaded");
    const big = BigInt64Array.from(ids, (v) => BigInt(v));
    const r = await this.#embed.run({ ids: new ort.Tensor("int64", big, [b, t]) });
    return { data: r.hidden.data as Float32Array, shape: [b, t, this.cfg!.hiddenSize] };
  }

  /** Last hidden [B, H] → logits [B, vocab]. */
  async logits(hidden: Float32Array, b: number): Promise<EngineTensor> {
    if (!this.#logits) throw engineError("the head is not loaded");
    const r = await this.#logits.run({
      hidden: new ort.Tensor("float32", hidden, [b, this.cfg!.hiddenSize]),
    });
    return { data: r.logits.data as Float32Array, shape: [b, this.cfg!.vocabSize] };
  }

  async dispose(): Promise<void> {
    this.#caches.clear();
    const all = [...this.#blocks.values(), this.#embed, this.#logits].filter((s): s is ort.InferenceSession =>
      !!s
    );
    this.#blocks.clear();
    this.#embed = this.#logits = undefined;
    for (const s of all) {
      try {
        await s.release();
      } catch {
        // already released
      }
    }
  }
}
