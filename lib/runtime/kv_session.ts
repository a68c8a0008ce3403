/**
 * One inference session's state in the KV engine (kv_engine.ts): its cache buffers, the tensors
 * bound to them, and the two operations on them that need no graph (release, beam reorder).
 * @module
 */
import type { CacheArray } from "./kv_cache_pool.ts";
import type { OrtTensor } from "./native/ort_api.ts";

/** One inference session's caches and the tensors bound to them. */
export interface KvSession {
  start: number;
  end: number;
  batch: number;
  maxLength: number;
  position: number;
  /** Per block j: K and V `[B, KVH, maxLength, D]`, and tensors over all of them. */
  k: CacheArray[];
  v: CacheArray[];
  kt: OrtTensor[];
  vt: OrtTensor[];
  seqlens: Int32Array;
  total: Int32Array;
  seqlensT: OrtTensor;
  totalT: OrtTensor;
  /** ALiBi bias of decode steps, `N × maxLength` (BLOOM). */
  bias?: Float32Array;
}

/** Releases every tensor a (possibly half-opened) session holds; its buffers stay with the caller. */
export function releaseSession(s: Partial<KvSession>): void {
  for (const t of [...(s.kt ?? []), ...(s.vt ?? []), s.seqlensT, s.totalT]) {
    t?.release();
  }
}

/**
 * Beam reorder: row r of every cache becomes old row `hypoIds[r]` (the first `p` positions of
 * each of its `kvHeads` heads of `headDim`), through one copy of the buffer per block.
 */
export function reorderRows(
  s: KvSession,
  hypoIds: readonly number[],
  p: number,
  kvHeads: number,
  headDim: number,
): void {
  if (p === 0 || hypoIds.every((h, r) => h === r)) return;
  const L = s.maxLength, D = headDim, row = kvHeads * L * D;
  for (const buf of [...s.k, ...s.v]) {
    const src = buf.slice(0, s.batch * row);
    for (let r = 0; r < s.batch; r++) {
      const from = hypoIds[r];
      if (from === r) continue;
      for (let h = 0; h < kvHeads; h++) {
        const o = h * L * D;
        buf.set(src.subarray(from * row + o, from * row + o + p * D), r * row + o);
      }
    }
  }
}
