/**
 * The attention units of a batch (kv_batch_step.ts, `AttnUnit`): which rows run through one
 * attention call over which caches, with which lengths and position inputs. A session's step is a
 * unit (or, a multi-token step after a past with B > 1, one unit per row); the decode steps of
 * sessions in neighbouring slab slots are one unit together (kv_slab.ts).
 * @module
 */
import type { AttnUnit } from "./kv_batch_step.ts";
import type { CacheArray } from "./kv_cache_pool.ts";
import { alibiBias } from "./kv_block_graph.ts";
import type { KvSession } from "./kv_session.ts";
import type { CacheSlabs, SlabSlot } from "./kv_slab.ts";
import { type OrtApi, type OrtTensor, TensorType } from "./native/ort_api.ts";

/** What the units are built from: the engine's library, cache layout and position tables. */
export interface UnitContext {
  readonly api: OrtApi;
  readonly slabs: CacheSlabs;
  readonly kvHeads: number;
  /** Head size of the caches (cacheHeadDim). */
  readonly headDim: number;
  /** Llama's RoPE tables, or BLOOM's ALiBi slopes. */
  readonly rope?: { cos: OrtTensor; sin: OrtTensor };
  readonly slopes?: Float32Array;
  readonly cacheTensor: (a: CacheArray, shape: number[]) => OrtTensor;
  /** Takes every tensor made here; the caller releases them after the pass. */
  readonly keep: (x: OrtTensor) => OrtTensor;
}

/** A decode step of a slab session (its slot, and the position it writes). */
export interface SlotDecode {
  readonly s: { readonly slot?: SlabSlot; readonly start: number };
  readonly p: number;
}

/**
 * One attention unit for the decode steps `xs` of sessions in neighbouring slots of one slab
 * (a run of `slotRuns`), `at` their first stacked row: caches `[rows, KVH, L, D]` over the slots,
 * each row's own past length, and for BLOOM each row's own ALiBi bias `[rows, N, 1, total]` — the
 * values each step gets alone.
 */
export function slotUnit(c: UnitContext, xs: readonly SlotDecode[], at: number): AttnUnit {
  const first = xs[0].s.slot!, rows = xs.length;
  const shape = [rows, c.kvHeads, first.slab.n / (c.kvHeads * c.headDim), c.headDim];
  const total = Math.max(...xs.map((x) => x.p)) + 1;
  const seqlens = c.keep(c.api.tensor(Int32Array.from(xs, (x) => x.p), [rows], TensorType.INT32));
  const totalT = c.keep(c.api.tensor(Int32Array.of(total), [], TensorType.INT32));
  let extra: OrtTensor[];
  if (c.rope) extra = [seqlens, totalT, c.rope.cos, c.rope.sin];
  else {
    const bias = alibiRows(c.slopes!, xs.map((x) => x.p), total);
    extra = [
      seqlens,
      totalT,
      c.keep(c.api.tensor(bias, [rows, c.slopes!.length, 1, total], TensorType.FLOAT)),
    ];
  }
  const caches = (j: number) => c.slabs.span(first, rows, xs[0].s.start + j);
  return {
    rows,
    tokens: 1,
    offset: at,
    k: (j) => c.keep(c.cacheTensor(caches(j).k, shape)),
    v: (j) => c.keep(c.cacheTensor(caches(j).v, shape)),
    extra,
  };
}

/**
 * ALiBi bias `[rows, N, 1, total]` of one-token steps at positions `ps`: row r is what `alibiBias`
 * gives that step alone (kv_block_graph.ts), over its first `ps[r] + 1` positions; the values past
 * a row's own length are never read and stay zero.
 */
export function alibiRows(slopes: Float32Array, ps: readonly number[], total: number): Float32Array {
  const n = slopes.length, bias = new Float32Array(ps.length * n * total);
  const scratch = new Float32Array(n * total);
  ps.forEach((p, r) => {
    const alone = alibiBias(slopes, 1, p + 1, scratch); // [N, 1, p + 1]
    for (let h = 0; h < n; h++) bias.set(alone.subarray(h * (p + 1), (h + 1) * (p + 1)), (r * n + h) * total);
  });
  return bias;
}

/**
 * The attention inputs after the caches: seqlens_k and total_length (given), then Llama's RoPE
 * tables or BLOOM's ALiBi bias for `s` new tokens ending at `t` (into `scratch` when it is large
 * enough).
 */
export function extraInputs(
  c: UnitContext,
  seqlens: OrtTensor,
  total: OrtTensor,
  s: number,
  t: number,
  scratch?: Float32Array,
): OrtTensor[] {
  if (c.rope) return [seqlens, total, c.rope.cos, c.rope.sin];
  const n = c.slopes!.length;
  const bias = alibiBias(c.slopes!, s, t, scratch);
  return [seqlens, total, c.keep(c.api.tensor(bias, [1, n, s, t], TensorType.FLOAT))];
}

/**
 * The attention units of session `s`'s step of `t` tokens at position `p` whose rows start at
 * `at`: the whole session, or — a multi-token step after a past with batch > 1, which
 * GroupQueryAttention takes only one row at a time — each row apart over its own part of the caches.
 */
export function sessionUnits(c: UnitContext, s: KvSession, p: number, t: number, at: number): AttnUnit[] {
  const b = s.batch;
  if (!(t > 1 && p > 0 && b > 1)) {
    s.seqlens.fill(p + t - 1);
    s.total[0] = p + t;
    const extra = extraInputs(c, s.seqlensT, s.totalT, t, p + t, t === 1 ? s.bias : undefined);
    return [{ rows: b, tokens: t, offset: at, k: (j) => s.kt[j], v: (j) => s.vt[j], extra }];
  }
  // B > 1: the caches are the session's own, [B, KVH, maxLength, D]
  const D = c.headDim, L = s.maxLength, row = c.kvHeads * L * D;
  const shape = [1, c.kvHeads, L, D];
  const seqlens = c.keep(c.api.tensor(Int32Array.of(p + t - 1), [1], TensorType.INT32));
  const total = c.keep(c.api.tensor(Int32Array.of(p + t), [], TensorType.INT32));
  const extra = extraInputs(c, seqlens, total, t, p + t);
  const units: AttnUnit[] = [];
  for (let r = 0; r < b; r++) {
    const view = (a: CacheArray[]) => (j: number) =>
      c.keep(c.cacheTensor(a[j].subarray(r * row, (r + 1) * row), shape));
    units.push({ rows: 1, tokens: t, offset: at + r * t, k: view(s.k), v: view(s.v), extra });
  }
  return units;
}
