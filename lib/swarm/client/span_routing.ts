/**
 * Routing a session's spans and opening their remote sessions: a span without a server is
 * replaced by a fresh route for exactly its range (around banned and suspect servers), and the
 * first step opens every span's remote session at once (`openAhead`).
 * @module
 */
import { errorMessage } from "../../errors.ts";
import { type AbortOptions, withTimeout } from "../../util/abort.ts";
import { describeRoute, routeInference } from "./route_inference.ts";
import { newSpan, type SessionState, type SpanState } from "./session_state.ts";
import { ownTimeout } from "./span_retries.ts";

export class SpanRouter {
  readonly #s: SessionState;

  constructor(state: SessionState) {
    this.#s = state;
  }

  /** Replaces chain[i] (a span without a server) by a fresh route for exactly its range. */
  reroute(i: number): void {
    const s = this.#s, o = s.options;
    const old = s.chain[i];
    const spans = s.bans.routeAround((skip) =>
      routeInference(o.table.servers(s.model), {
        model: s.model,
        start: old.start,
        end: old.end,
        maxLength: s.maxLength,
        batch: s.batch,
        banned: (p) => skip(p) || s.refusedBy.has(p),
        clientRttMs: (p) => s.pings.rtt(p),
        weights: o.weights,
        version: o.version,
        costs: o.costs,
      }), s.maxLength);
    const fresh = spans.map((r, k) => newSpan(r.start, r.end, k === 0 ? old.history : null, r.server));
    s.chain.splice(i, 1, ...fresh);
    if (s.routed) s.stats.replacements += fresh.length;
    s.routed = true;
    s.log.info("route", { blocks: `${old.start}:${old.end}`, route: describeRoute(spans) });
  }

  /** Opens `span`'s remote session on its server (within the open timeout). */
  async openRemote(span: SpanState, { signal }: AbortOptions = {}): Promise<void> {
    const s = this.#s;
    const server = span.server!;
    const remote = await withTimeout(
      s.options.openTimeoutMs ?? 10_000,
      (t) =>
        s.options.transport.openInference(server, {
          sessionId: s.nextRemoteId(),
          model: s.model,
          start: span.start,
          end: span.end,
          maxLength: s.maxLength,
          batch: s.batch,
        }, { signal: t }),
      { signal },
    );
    if (s.closed) {
      // closed while it was opening (an open-ahead outliving its step): do not leak it
      await remote.close().catch(() => {});
      s.assertOpen();
    }
    span.remote = remote;
  }

  /**
   * The first step routes the whole range and starts opening every span's remote session at once,
   * instead of one per hop as the step reaches it; the step goes on as soon as the first span is
   * open, so the later spans open while the earlier ones compute. (Opening the later ones only once
   * the first is open made its open quicker but slowed its compute far more: docs/benchmarks.md,
   * "Opening a session".) `onSettled` runs after each open settles (the session starts linking the
   * open neighbours then). A failure here is left to the step, whose retries open (and, on
   * failure, ban and replace) span by span as usual; an open that ran out of time (to a server not
   * reached through relays) fails its server at the step without a second open.
   */
  openAhead(onSettled: () => void, { signal }: AbortOptions = {}): void {
    const s = this.#s;
    try {
      this.reroute(0);
    } catch {
      return; // e.g. MISSING_BLOCKS: the step reports it with its retries
    }
    // never routed = nothing sent yet: every span's history is empty
    for (const span of s.chain) span.history ??= [];
    for (const span of s.chain) {
      if (!span.server || span.remote) continue;
      const server = span.server;
      span.opening = this.openRemote(span, { signal }).catch((err) => {
        // a server that took the whole open timeout is not given a second one by the step (one
        // reached through relays may have spent it dialling and punching: it gets its second open)
        const timedOut = !signal?.aborted && ownTimeout(err) && server.usingRelay !== true;
        if (timedOut) span.openTimedOut = err;
        s.log.debug(timedOut ? "opening ahead timed out" : "opening ahead failed; the step retries", {
          peer: server.peerId,
          error: errorMessage(err),
        });
      }).finally(() => {
        span.opening = undefined;
        if (!s.closed) onSettled();
      });
    }
  }
}
