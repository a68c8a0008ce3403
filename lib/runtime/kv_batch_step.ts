/**
 * One pass of a span's blocks over the stacked rows of several inference sessions (continuous
 * batching, docs/architecture.md): per block, the projection graph runs once over every row, the
 * attention graph once per unit (a session, one row of one, or the decode steps of sessions in
 * neighbouring slab slots: attn_units.ts) on that unit's caches, and the output graph once over
 * every row again. A batch of one unit runs the block's joined graph instead. The weights — all in
 * the projection and output graphs — are streamed once per block whatever the number of sessions.
 *
 * Units are independent: a unit's rows never meet another's (the position-wise graphs treat rows
 * apart, attention runs per unit), so a session's numbers do not depend on who shares its batch
 * beyond the floating-point order of the matrix kernels (and, for int8 weights, the activation
 * scale that DynamicQuantizeMatMul takes over the whole stack; see docs/architecture.md).
 * @module
 */
import type { KvGraphs } from "./kv_graphs.ts";
import { type OrtApi, type OrtTensor, TensorType } from "./native/ort_api.ts";

/** Rows that run through one attention call: `rows × tokens` stacked rows from `offset` (in tokens). */
export interface AttnUnit {
  readonly rows: number;
  readonly tokens: number;
  readonly offset: number;
  /** The caches of the span's block j (relative to its start). */
  readonly k: (j: number) => OrtTensor;
  readonly v: (j: number) => OrtTensor;
  /** seqlens_k, total_length, then Llama's RoPE tables or BLOOM's bias. */
  readonly extra: readonly OrtTensor[];
}

/** Buffers of a pass over `n` stacked token rows, and whole tensors over them. */
export class SpanScratch {
  readonly input: Float32Array;
  readonly #bufs: Float32Array[];
  readonly tensors: { input: OrtTensor; a: OrtTensor; b: OrtTensor; qkv: OrtTensor; attn: OrtTensor };

  constructor(
    readonly api: OrtApi,
    readonly n: number,
    readonly hidden: number,
    readonly qkvWidth: number,
    readonly attnWidth: number,
  ) {
    const f = (w: number) => new Float32Array(n * w);
    this.input = f(hidden);
    this.#bufs = [f(hidden), f(hidden), f(qkvWidth), f(attnWidth)];
    const made: OrtTensor[] = [];
    const t = (a: Float32Array, w: number) => {
      const x = api.tensor(a, [1, n, w], TensorType.FLOAT);
      made.push(x);
      return x;
    };
    try {
      this.tensors = {
        input: t(this.input, hidden),
        a: t(this.#bufs[0], hidden),
        b: t(this.#bufs[1], hidden),
        qkv: t(this.#bufs[2], qkvWidth),
        attn: t(this.#bufs[3], attnWidth),
      };
    } catch (err) {
      for (const x of made) x.release();
      throw err;
    }
  }

  /** Tensors `[rows, tokens, width]` over a unit's part of the q|k|v and attention buffers. */
  views(u: AttnUnit): { qkv: OrtTensor; attn: OrtTensor } {
    const rows = u.rows * u.tokens, at = u.offset;
    const qkv = this.api.tensor(
      this.#bufs[2].subarray(at * this.qkvWidth, (at + rows) * this.qkvWidth),
      [u.rows, u.tokens, this.qkvWidth],
      TensorType.FLOAT,
    );
    try {
      const attn = this.api.tensor(
        this.#bufs[3].subarray(at * this.attnWidth, (at + rows) * this.attnWidth),
        [u.rows, u.tokens, this.attnWidth],
        TensorType.FLOAT,
      );
      return { qkv, attn };
    } catch (err) {
      qkv.release();
      throw err;
    }
  }

  release(): void {
    for (const t of Object.values(this.tensors)) t.release();
  }
}

/**
 * Runs blocks [start, end) over `scratch.input` (the units' rows, stacked in token order) and
 * returns the buffer holding the output rows in the same order (one of the scratch's; copy what
 * must outlive the next pass).
 */
export function runSpan(
  api: OrtApi,
  g: KvGraphs,
  start: number,
  end: number,
  units: readonly AttnUnit[],
  scratch: SpanScratch,
): Float32Array {
  if (units.length === 1) return runAlone(api, g, start, end, units[0], scratch);
  const t = scratch.tensors;
  const views: { qkv: OrtTensor; attn: OrtTensor }[] = [];
  try {
    for (const u of units) views.push(scratch.views(u));
    let x = t.input;
    for (let i = start; i < end; i++) {
      const blk = g.block(i);
      const y = (i - start) % 2 === 0 ? t.a : t.b;
      api.run(blk.proj, [x], [t.qkv]);
      for (let n = 0; n < units.length; n++) {
        const u = units[n], j = i - start, k = u.k(j), v = u.v(j);
        // a batch's decode steps run their attention on this thread, prompt chunks on the pool
        const attn = u.tokens === 1 ? blk.attn1 : blk.attn;
        api.run(attn, [views[n].qkv, k, v, ...u.extra], [views[n].attn, k, v]);
      }
      api.run(blk.out, [x, t.attn], [y]);
      x = y;
    }
    return x.data as Float32Array;
  } finally {
    for (const w of views) {
      w.qkv.release();
      w.attn.release();
    }
  }
}

/**
 * `runSpan` for one unit (all the scratch's rows): each block's joined graph, one run per block on
 * its own pool, which spins during the run and parks after it (kv_graphs.ts).
 */
function runAlone(
  api: OrtApi,
  g: KvGraphs,
  start: number,
  end: number,
  u: AttnUnit,
  scratch: SpanScratch,
): Float32Array {
  const t = scratch.tensors;
  const made: OrtTensor[] = [];
  // the joined graph takes [B, S, H]: the scratch's own tensors are [1, rows, H]
  const view = (x: OrtTensor) => {
    if (u.rows === 1) return x;
    const v = api.tensor(x.data, [u.rows, u.tokens, scratch.hidden], TensorType.FLOAT);
    made.push(v);
    return v;
  };
  try {
    const ab = [view(t.a), view(t.b)];
    let x = view(t.input);
    for (let i = start; i < end; i++) {
      const j = i - start, y = ab[j % 2], k = u.k(j), v = u.v(j);
      api.run(g.block(i).block, [x, k, v, ...u.extra], [y, k, v]);
      x = y;
    }
    return x.data as Float32Array;
  } finally {
    for (const m of made) m.release();
  }
}

/** Kept scratches, by stacked rows: decode batches come back with the same few sizes. */
export class ScratchCache {
  readonly #kept = new Map<number, SpanScratch>();

  constructor(
    readonly make: (n: number) => SpanScratch,
    readonly maxRows = 64,
    readonly maxKept = 16,
  ) {}

  /** A scratch for `n` rows; `done` returns it (kept for small `n`, released otherwise). */
  take(n: number): SpanScratch {
    const s = this.#kept.get(n);
    if (s) {
      this.#kept.delete(n);
      return s;
    }
    return this.make(n);
  }

  give(s: SpanScratch): void {
    if (s.n > this.maxRows || this.#kept.has(s.n)) return s.release();
    if (this.#kept.size >= this.maxKept) {
      const [oldest, o] = this.#kept.entries().next().value!;
      this.#kept.delete(oldest);
      o.release();
    }
    this.#kept.set(s.n, s);
  }

  clear(): void {
    for (const s of this.#kept.values()) s.release();
    this.#kept.clear();
  }
}
