/**
 * One step pushed server to server: the client sends it to the first span of a run of linked
 * spans, each server pushes its output to the next, and the span where the push stops (the last
 * one, or one that could not push on) replies with every output of the run (`PushReply.trail`),
 * which the client keeps as the next spans' input histories. Anything wrong (a failed server, a
 * lost link, a bad reply) returns undefined, no reply in time "timed out": the session then runs
 * the step span by span, where failures ban and replace servers as usual (sooner after a push no
 * server answered: step_deadline.ts).
 * @module
 */
import { errorMessage } from "../../errors.ts";
import type { AbortOptions } from "../../util/abort.ts";
import type { SessionState, SpanState } from "./session_state.ts";
import { pushDeadlineMs } from "./step_deadline.ts";
import type { Hidden, PushReply } from "./types.ts";

/** A push's result: the last output and how many spans it went through. */
export interface PushOutcome {
  readonly last: Hidden;
  readonly spans: number;
}

/**
 * Sends step `stepId` of `x` (new positions from `p`) to chain[i], pushed through the `n` spans
 * after it, and waits for the reply from whichever span the push stops at.
 */
export async function pushStep(
  s: SessionState,
  i: number,
  n: number,
  x: Hidden,
  p: number,
  stepId: number,
  { signal }: AbortOptions = {},
): Promise<PushOutcome | "timed out" | undefined> {
  const spans = s.chain.slice(i, i + n + 1);
  // every session of the push is this step's alone until it is over (in chain order: the
  // background linking holds one session at a time, so nothing can wait in a circle)
  const releases: (() => void)[] = [];
  try {
    for (const span of spans) releases.push(await span.lock.acquire({ signal }));
    return await pushHeld(s, spans, n, x, p, stepId, { signal });
  } finally {
    for (const release of releases) release();
  }
}

async function pushHeld(
  s: SessionState,
  spans: SpanState[],
  n: number,
  x: Hidden,
  p: number,
  stepId: number,
  { signal }: AbortOptions = {},
): Promise<PushOutcome | "timed out" | undefined> {
  // ends every wait of the push without closing a session: a reply came, the push ran out of
  // time (the rerun span by span then finds the slow server with its own deadline), or the
  // caller gave up on the step (the sessions stay usable: late replies are skipped as stale).
  // The work of the whole push (its tokens through every span's blocks) on one base: a full
  // deadline per span added up let a hung server hold a decode step for minutes before the rerun.
  const until = new AbortController();
  const limitMs = pushDeadlineMs(
    x.shape[0] * x.shape[1],
    spans.map((span) => span.end - span.start),
    s.options.stepTimeoutMs,
  );
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    until.abort(new Error(`no reply within ${limitMs} ms`));
  }, limitMs);
  const onAbort = () => until.abort(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    try {
      await spans[0].remote!.links!.send(x, { stepId, startFromPosition: p, push: n, signal });
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      return undefined;
    }
    const waits = spans.map((span, k) =>
      span.remote!.links!.receive(stepId, {
        pushed: k > 0,
        ticket: k > 0 ? spans[k - 1].link!.ticket : undefined,
        until: until.signal,
      }).then((r) => ({ k, r }), (err: unknown) => ({ k, err }))
    );
    // the first to settle decides (a reply, a failed server, a lost link); the others are ended
    await Promise.race(waits);
    until.abort(new Error("another span replied"));
    const settled = await Promise.all(waits);
    signal?.throwIfAborted();
    let k = -1, reply: PushReply | undefined;
    for (const w of settled) {
      if ("r" in w && typeof w.r === "object" && w.k > k) ({ k, r: reply } = w);
    }
    const failed = settled.find((w) => "err" in w || w.r === "lost");
    if (!reply) {
      s.log.debug("push failed; the step goes span by span", {
        span: failed && `${spans[failed.k].start}:${spans[failed.k].end}`,
        error: failed && "err" in failed
          ? errorMessage(failed.err)
          : timedOut
          ? "no reply in time"
          : "link lost",
      });
      return timedOut && !failed ? "timed out" : undefined;
    }
    if (reply.trail.length !== k) return undefined;
    const outs = [...reply.trail, reply.hidden];
    try {
      outs.forEach((y, j) => s.checkReply(spans[j], y, x));
    } catch (err) {
      s.log.debug("bad push reply; the step goes span by span", { error: errorMessage(err) });
      return undefined;
    }
    spans[0].history!.push(x);
    for (let j = 1; j <= k; j++) spans[j].history!.push(outs[j - 1]);
    for (let j = 0; j <= k; j++) s.bans.succeed(spans[j].server!.peerId);
    s.stats.pushed += k;
    return { last: outs[k], spans: k + 1 };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
    until.abort();
  }
}
