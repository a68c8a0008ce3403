/**
 * One step through one span, relayed by the client: the span's input goes to its server and the
 * output comes back. A span whose remote session is new (a replacement after a failure, or a
 * session let go after an abort) gets its whole input history replayed with the step, as one step
 * from position 0; a span routed in place of part of a failed range takes its history from the
 * span before it, whose replay returned every position (`Flow.full`).
 * @module
 */
import { SwarmError } from "../../errors.ts";
import { type AbortOptions, withTimeout } from "../../util/abort.ts";
import { concatTokens, sliceTokens } from "./hidden_ops.ts";
import type { Flow, SessionState, SpanState } from "./session_state.ts";
import type { SpanRouter } from "./span_routing.ts";
import { RERUN_BASE_MS, STEP_BASE_MS, stepDeadlineMs } from "./step_deadline.ts";

/** Runs step `stepId` (new positions from `p`) through `span`; throws on any failure of its server. */
export async function relayStep(
  s: SessionState,
  router: SpanRouter,
  span: SpanState,
  flow: Flow,
  p: number,
  stepId: number,
  { signal, rerun = false }: AbortOptions & {
    /** The step reruns a push that got no answer in time (a shorter deadline: step_deadline.ts). */
    rerun?: boolean;
  } = {},
): Promise<Flow> {
  const t = flow.last.shape[1];
  if (span.history === null) {
    if (!flow.full) {
      throw new SwarmError(
        "INTERNAL",
        `span [${span.start}, ${span.end}) has no history and no full input`,
      );
    }
    span.history = p > 0 ? [sliceTokens(flow.full, 0, p)] : [];
  }
  if (span.opening) await span.opening;
  if (span.openTimedOut !== undefined) {
    const err = span.openTimedOut;
    span.openTimedOut = undefined;
    throw err;
  }
  s.assertOpen();
  const replay = !span.remote;
  if (replay) await router.openRemote(span, { signal });
  const input = replay && p > 0 ? concatTokens([...span.history, flow.last]) : flow.last;
  // the background linking may hold the session (up to its open timeout): the caller's abort
  // ends the wait for it too
  const y = await span.lock.run(() =>
    withTimeout(
      stepDeadlineMs(input.shape[0] * input.shape[1], span.end - span.start, {
        maxMs: s.options.stepTimeoutMs,
        // a replay goes to a session just opened (reopened through a relay, or after the server
        // ended it): the step was not just sent there, so it gets the full base
        baseMs: rerun && !replay ? RERUN_BASE_MS : STEP_BASE_MS,
      }),
      (timeout) => span.remote!.step(input, { stepId, startFromPosition: replay ? 0 : p, signal: timeout }),
      { signal },
    ), { signal });
  s.checkReply(span, y, input);
  span.history.push(flow.last);
  s.bans.succeed(span.server!.peerId);
  if (!replay) return { last: y };
  s.stats.replayedTokens += p;
  return { last: p > 0 ? sliceTokens(y, p, p + t) : y, full: y };
}
