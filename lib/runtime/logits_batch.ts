/**
 * One LM-head pass for the logits requests of several generations (the client head's Worker,
 * ort_worker.ts): the LM head is the largest matrix a node reads per token (a Qwen3-32B head is
 * 151 936 × 5 120), and each generation asks for its own rows every token. Requests queued while the
 * head was busy are stacked into one `[ΣB, H]` input and the `[ΣB, V]` output is cut back into
 * theirs, so the weights are streamed once for all of them (docs/architecture.md, "Continuous
 * batching"). Rows never meet: each row's logits are its own, up to the matrix kernel's
 * summation order.
 * @module
 */

/** Most rows stacked into one pass (bounds the output buffer: rows × vocabulary floats). */
export const LOGITS_ROWS_MAX = 32;

/** A logits request: `batch` rows of `H` values. */
export interface LogitsPart {
  readonly hidden: Float32Array;
  readonly batch: number;
}

/**
 * Takes, in queue order, the queued requests `isLogits` picks out of `queue` (removed from it), up
 * to `LOGITS_ROWS_MAX` rows (the first always); `stop` ends the scan (a job nothing may pass).
 */
export function takeLogits<J>(
  queue: J[],
  partOf: (j: J) => LogitsPart | undefined,
  stop: (j: J) => boolean,
): J[] {
  const taken: J[] = [];
  let rows = 0;
  for (let n = 0; n < queue.length;) {
    const j = queue[n], p = partOf(j);
    if (p === undefined) {
      if (stop(j)) break;
      n++;
      continue;
    }
    if (taken.length > 0 && rows + p.batch > LOGITS_ROWS_MAX) break;
    taken.push(j);
    rows += p.batch;
    queue.splice(n, 1);
  }
  return taken;
}

/** The parts' rows stacked in order: `[ΣB × H]`. */
export function stackRows(parts: readonly LogitsPart[], H: number): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.batch, 0) * H);
  let at = 0;
  for (const p of parts) {
    out.set(p.hidden.subarray(0, p.batch * H), at);
    at += p.batch * H;
  }
  return out;
}

/** `[ΣB × V]` logits cut back into each part's `[B, V]` (copies: each answer owns its buffer). */
export function splitRows(
  logits: Float32Array,
  batches: readonly number[],
  V: number,
): { data: Float32Array; shape: number[] }[] {
  let at = 0;
  return batches.map((b) => {
    const data = logits.slice(at * V, (at + b) * V);
    at += b;
    return { data, shape: [b, V] };
  });
}
