/**
 * Which queued steps the runtime Worker (ort_worker.ts) runs together: every step of a distinct
 * session that is ready — queued while the engine was busy, or within a short bounded window —
 * goes into one `Engine.stepMany` call, one weight pass for all of them (docs/architecture.md,
 * "Continuous batching"). A long prompt is cut into chunks of at most `chunkTokens` tokens per
 * batch, so the decode steps queued behind it run between its chunks; the steps are taken in
 * queue order, so none waits more than one batch for a later one.
 * @module
 */
import type { EngineTensor, StepRequest, StepResult } from "./engine_types.ts";

/** A step in the queue, and how much of it has run when it runs in chunks. */
export interface PendingStep {
  readonly id: string;
  readonly hidden: EngineTensor;
  readonly startFromPosition?: number;
  readonly hypoIds?: number[];
  /** When it was queued (performance.now()). */
  readonly queuedAt: number;
  /** Tokens already run (chunks), and their output `[B, T, H]` once a chunk ran. */
  done: number;
  out?: Float32Array;
}

/** What a queued job is to the scheduler. */
export type JobKind =
  /** a step */
  | { step: PendingStep }
  /** work on one session (open, close, direct path): that session's later steps wait for it */
  | { session: string }
  /** work on no session (embeddings, logits): steps behind it may go first */
  | { free: true }
  /** anything else (load, stats, dispose): nothing behind it goes first */
  | { barrier: true };

export interface BatchOptions {
  /** Most tokens of prompts (steps of more than one token) per batch; decode steps always fit. */
  readonly chunkTokens: number;
  /** Most sessions per batch. */
  readonly maxSessions: number;
}

export const DEFAULT_BATCH_OPTIONS: BatchOptions = { chunkTokens: 64, maxSessions: 64 };

/** A step's part in a batch: the request for the engine and the tokens it covers. */
export interface BatchPart<J> {
  readonly job: J;
  readonly step: PendingStep;
  readonly req: StepRequest;
  readonly tokens: number;
}

/** Rows [from, to) of the token axis of `x` `[B, T, H]` (a view when B = 1). */
function tokenSlice(x: EngineTensor, from: number, to: number): EngineTensor {
  const [b, t, h] = x.shape;
  if (from === 0 && to === t) return x;
  if (b === 1) return { data: x.data.subarray(from * h, to * h), shape: [1, to - from, h] };
  const out = new Float32Array(b * (to - from) * h);
  for (let r = 0; r < b; r++) {
    out.set(x.data.subarray((r * t + from) * h, (r * t + to) * h), r * (to - from) * h);
  }
  return { data: out, shape: [b, to - from, h] };
}

/**
 * Takes the next batch out of `queue` (in order; jobs not taken stay where they were): the steps
 * of distinct sessions from the head on, up to the first barrier, skipping sessions that a job
 * ahead of their step concerns. The head job must be a step.
 */
export function takeBatch<J>(queue: J[], kindOf: (j: J) => JobKind, o: BatchOptions): BatchPart<J>[] {
  const parts: BatchPart<J>[] = [];
  const blocked = new Set<string>();
  let budget = o.chunkTokens;
  const keep: J[] = [];
  for (let n = 0; n < queue.length; n++) {
    const job = queue[n], k = kindOf(job);
    if ("barrier" in k) {
      keep.push(...queue.slice(n));
      break;
    }
    if ("free" in k) {
      keep.push(job);
      continue;
    }
    if ("session" in k) {
      blocked.add(k.session);
      keep.push(job);
      continue;
    }
    const s = k.step, t = s.hidden.shape[1], left = t - s.done;
    const tokens = left === 1 ? 1 : Math.min(left, budget);
    if (blocked.has(s.id) || parts.length >= o.maxSessions || tokens < 1) {
      blocked.add(s.id);
      keep.push(job);
      continue;
    }
    blocked.add(s.id);
    if (left > 1) budget -= tokens;
    const first = s.done === 0;
    parts.push({
      job,
      step: s,
      tokens,
      req: {
        id: s.id,
        hidden: tokenSlice(s.hidden, s.done, s.done + tokens),
        ...(first ? { startFromPosition: s.startFromPosition, hypoIds: s.hypoIds } : {}),
        ...(first && tokens < t ? { reserve: t } : {}),
      },
    });
  }
  queue.length = 0;
  queue.push(...keep);
  return parts;
}

/** Distinct sessions with a step in `queue` (what a batch taken now would hold, at most). */
export function readySessions<J>(queue: readonly J[], kindOf: (j: J) => JobKind): number {
  const ids = new Set<string>();
  for (const j of queue) {
    const k = kindOf(j);
    if ("barrier" in k) break;
    if ("step" in k) ids.add(k.step.id);
  }
  return ids.size;
}

/**
 * Applies a part's result to its step: `done` with the whole output, `more` when chunks remain
 * (the job goes back to the head of the queue), or `failed`.
 */
export function settlePart(
  p: BatchPart<unknown>,
  r: StepResult,
): { state: "done"; value: EngineTensor } | { state: "more" } | { state: "failed"; error: unknown } {
  if (!r.ok) return { state: "failed", error: r.error };
  const s = p.step, [b, t, h] = s.hidden.shape;
  if (s.done === 0 && p.tokens === t) return { state: "done", value: r.value };
  s.out ??= new Float32Array(b * t * h);
  for (let row = 0; row < b; row++) {
    s.out.set(
      r.value.data.subarray(row * p.tokens * h, (row + 1) * p.tokens * h),
      (row * t + s.done) * h,
    );
  }
  s.done += p.tokens;
  return s.done === t ? { state: "done", value: { data: s.out, shape: [b, t, h] } } : { state: "more" };
}

/**
 * Whom the next batch waits for (ort_worker.ts, `waitForPeers`): the sessions of the last two
 * batches that are still open. Fewer than two means no wait; after a wait in vain the next
 * `PATIENCE` batches do not wait either.
 */
export class BatchPeers {
  static readonly PATIENCE = 2;
  #recent: [Set<string>, Set<string>] = [new Set(), new Set()];
  #patience = 0;

  /** Records the sessions of a batch that ran. */
  ran(ids: Iterable<string>): void {
    this.#recent = [this.#recent[1], new Set(ids)];
  }

  /** A closed session is not waited for (a client's next session would wait for its last one). */
  closed(id: string): void {
    for (const r of this.#recent) r.delete(id);
  }

  /** How many sessions the next batch waits for; 0: none (and one batch of patience used up). */
  expected(): number {
    const n = new Set([...this.#recent[0], ...this.#recent[1]]).size;
    if (n < 2) return 0;
    if (this.#patience === 0) return n;
    this.#patience--;
    return 0;
  }

  /** The last wait ended before every expected session had a step queued. */
  inVain(): void {
    this.#patience = BatchPeers.PATIENCE;
  }
}
