/**
 * One inference session's state in the KV engine (kv_engine.ts): its cache buffers, the tensors
 * bound to them, and the two operations on them that need no graph (release, beam reorder).
 * @module
 */
import { RuntimeError } from "../errors.ts";
import type { StepRequest } from "./engine_types.ts";
import type { CacheArray } from "./kv_cache_pool.ts";
import type { SlabSlot } from "./kv_slab.ts";
import type { OrtTensor } from "./native/ort_api.ts";

/** One inference session's caches and the tensors bound to them. */
export interface KvSession {
  start: number;
  end: number;
  batch: number;
  maxLength: number;
  position: number;
  /**
   * Per block j: K and V `[B, KVH, L, D]`, and tensors over all of them. L is `maxLength`, or for a
   * one-row session its slab's length class (kv_slab.ts), at least `maxLength`.
   */
  k: CacheArray[];
  v: CacheArray[];
  kt: OrtTensor[];
  vt: OrtTensor[];
  seqlens: Int32Array;
  total: Int32Array;
  seqlensT: OrtTensor;
  totalT: OrtTensor;
  /** A one-row session's slot in the slabs (kv_slab.ts); absent for B > 1. */
  slot?: SlabSlot;
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

/**
 * Checks one step of a batch against its session `s` (BAD_INPUT, TOO_LONG; `seen`: the sessions
 * already in the batch), then applies its rollback and reorder: the step will run. Returns the
 * position it starts at and its tokens.
 */
export function prepareStep(
  s: KvSession,
  req: StepRequest,
  seen: Set<string>,
  hiddenSize: number,
  kvHeads: number,
  headDim: number,
): { s: KvSession; p: number; t: number } {
  const [b, t, H] = req.hidden.shape;
  const bad = (m: string, hint: string) => new RuntimeError("BAD_INPUT", m, { hint });
  if (seen.has(req.id)) {
    throw bad(`two steps of session ${req.id} in one batch`, "internal: batch a session once");
  }
  if (b !== s.batch) throw bad(`batch ${b} ≠ session batch ${s.batch}`, "send the session's batch size");
  if (H !== hiddenSize || t < 1 || req.hidden.data.length !== b * t * H) {
    throw bad(
      `hidden states of shape [${req.hidden.shape}] over ${req.hidden.data.length} values`,
      "send [B, T, H]",
    );
  }
  let p = s.position;
  const from = req.startFromPosition;
  if (from !== undefined) {
    if (from < 0 || from > p) {
      throw bad(
        `startFromPosition ${from} is outside [0, ${p}]`,
        "roll back only to a position already in the cache",
      );
    }
    p = from;
  }
  const need = Math.max(t, req.reserve ?? 0);
  if (p + need > s.maxLength) {
    throw new RuntimeError(
      "TOO_LONG",
      `step of ${need} tokens at position ${p} exceeds the session's maxLength ${s.maxLength}`,
      { hint: "open the session with a larger maxLength" },
    );
  }
  seen.add(req.id);
  s.position = p;
  if (req.hypoIds) reorderRows(s, req.hypoIds, p, kvHeads, headDim);
  return { s, p, t };
}
