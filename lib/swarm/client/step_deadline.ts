/**
 * How long the client waits for one server's step (`stepDeadlineMs`), or for a step pushed through
 * several (`pushDeadlineMs`), before it counts the server as hung, bans it and replays the step
 * elsewhere (docs/architecture.md, "Failover"). The deadline grows with the work: a decode step
 * takes milliseconds, a prompt chunk or a replayed history through a span of many blocks takes
 * seconds to minutes on CPU. A fixed minute per span let a server that hangs mid-generation stall
 * it that long, and a pushed step waited a minute per span of the push before the rerun began.
 * @module
 */

/** What any step gets: a decode step at a server busy with other sessions' batches. */
export const STEP_BASE_MS = 15_000;

/**
 * What a step that reruns a push which got no answer gets before its work: the servers have just
 * been sent the step, so a hung one is found sooner than by a second full deadline.
 */
export const RERUN_BASE_MS = 5_000;

/**
 * What each token adds per block of the span: a slow CPU's prompt chunk (a Qwen3-32B int8 block on
 * the 2-core development VM computes a 512-token chunk at about 4 ms per token; docs/benchmarks.md).
 */
export const STEP_MS_PER_TOKEN_BLOCK = 5;

/** The most one server's step gets (the session's `stepTimeoutMs` where it sets one). */
export const STEP_MAX_MS = 60_000;

/** The deadline of a step of `tokens` tokens (rows × positions) through a span of `blocks` blocks. */
export function stepDeadlineMs(
  tokens: number,
  blocks: number,
  { maxMs = STEP_MAX_MS, baseMs = STEP_BASE_MS }: { maxMs?: number; baseMs?: number } = {},
): number {
  return Math.min(maxMs, baseMs + Math.max(0, tokens) * Math.max(1, blocks) * STEP_MS_PER_TOKEN_BLOCK);
}

/**
 * The deadline of a step of `tokens` tokens pushed through spans of `spanBlocks` blocks: their
 * work added up, at most what each span would get on its own (`maxMs` each).
 */
export function pushDeadlineMs(tokens: number, spanBlocks: readonly number[], maxMs = STEP_MAX_MS): number {
  const blocks = spanBlocks.reduce((a, b) => a + Math.max(1, b), 0);
  return Math.min(
    maxMs * spanBlocks.length,
    STEP_BASE_MS + Math.max(0, tokens) * blocks * STEP_MS_PER_TOKEN_BLOCK,
  );
}
