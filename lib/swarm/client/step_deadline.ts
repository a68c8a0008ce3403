/**
 * `stepDeadlineMs`: how long the client waits for one server's step (or one pushed step through
 * several) before it counts the server as hung, bans it and replays the step elsewhere
 * (docs/architecture.md, "Failover"). A deadline that grows with the step's tokens: a decode step
 * takes milliseconds, a prefill chunk or a replayed history takes seconds on a slow CPU span. A
 * fixed one of a minute let a server that hangs mid-generation stall it for that long, and left no
 * time to fail over inside the gateway's 60 s to a first token (docs/protocol.md).
 * @module
 */

/** What any step gets: a decode step at a server busy with other sessions' batches. */
export const STEP_BASE_MS = 15_000;

/** What each token of a step (rows × positions) adds: a prefill on a slow CPU span. */
export const STEP_MS_PER_TOKEN = 10;

/** The most any step gets (the session's `stepTimeoutMs` where it sets one). */
export const STEP_MAX_MS = 60_000;

/** The deadline of a step of `tokens` tokens (rows × positions), at most `maxMs`. */
export function stepDeadlineMs(tokens: number, maxMs = STEP_MAX_MS): number {
  return Math.min(maxMs, STEP_BASE_MS + Math.max(0, tokens) * STEP_MS_PER_TOKEN);
}
