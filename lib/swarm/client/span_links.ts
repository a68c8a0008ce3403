/**
 * Links between neighbouring spans of a session (server-to-server push, Petals' `rpc_push`): when
 * a push pays (`pushPays`, the "auto" policy), linking them in the background, and which links a
 * step can trust now (`trusted`, `pushRun`). Steps never wait for a link: until a pair's link is
 * trusted, the step relays there (relay_step.ts); once it is, the step is pushed (push_step.ts).
 * @module
 */
import { errorMessage } from "../../errors.ts";
import { withTimeout } from "../../util/abort.ts";
import type { SessionState, SpanLink } from "./session_state.ts";
import type { Hidden } from "./types.ts";

/** Largest frame a push may build up (every output of the push travels in the last one): 16 MiB. */
export const MAX_PUSH_BYTES = 16 * 1024 * 1024;
/** "auto" pushes over a link when the client is at least this much farther (RTT, ms) from its target than its source is. */
export const PUSH_MIN_GAIN_MS = 1;

/**
 * Whether pushing from one server to the next saves time (the "auto" policy). A push replaces the
 * client's round trip to the next server by the hop between the two servers: one leg and one
 * wake-up of the client fewer per hop. It pays most where the client is far from the servers.
 * Where both servers run on the client's own machine there is no network to save, only the legs:
 * it broke even while the runtime's threads were unpinned (a push makes the next server start
 * while the previous one still finishes on the same cores) and gains a little since they are
 * pinned (docs/benchmarks.md, "Server-to-server push"). So: push between two servers on the
 * client's machine; with both RTTs known (the client's pings, the previous server's announced
 * `nextPings`), push when the client's is PUSH_MIN_GAIN_MS longer; otherwise push.
 */
export function pushPays(
  link: { bothLocal: boolean; clientRttMs?: number; serverRttMs?: number },
): boolean {
  if (link.bothLocal) return true;
  const { clientRttMs: c, serverRttMs: s } = link;
  if (c !== undefined && s !== undefined && Number.isFinite(c) && Number.isFinite(s)) {
    return c - s >= PUSH_MIN_GAIN_MS;
  }
  return true;
}

export class SpanLinker {
  readonly #s: SessionState;

  constructor(state: SessionState) {
    this.#s = state;
  }

  /** Neighbouring spans linked so far (their steps are pushed server to server). */
  get linkedHops(): number {
    let n = 0;
    for (let k = 0; k + 1 < this.#s.chain.length; k++) if (this.trusted(k)) n++;
    return n;
  }

  /**
   * Starts linking, in the background, every pair of neighbouring spans whose remotes are open
   * and neither linked nor being linked (or whose link was lost), so that later steps push down
   * the route. The first step's linking thus happens while it computes (each exchange waits until
   * the step is done with that remote: `SpanState.lock`, `SpanState.turn`) instead of holding up
   * the second step (docs/benchmarks.md, "Background linking"). A failure only leaves the pair
   * unlinked; a failed attempt between the same two sessions is not repeated.
   */
  linkAhead(): void {
    const s = this.#s;
    for (let i = 0; i + 1 < s.chain.length; i++) {
      if (!this.linkable(i) || this.trusted(i)) continue;
      const span = s.chain[i], next = s.chain[i + 1];
      const from = span.remote!, to = next.remote!;
      // linked, being linked or failed between these two sessions: nothing to start
      if (span.link && span.link.from === from && span.link.to === to && !lostLink(span.link)) continue;
      const attempt: SpanLink = { from, to, ticket: undefined, ok: false };
      span.link = attempt;
      const ms = s.options.openTimeoutMs ?? 10_000;
      const linking: Promise<void> = (async () => {
        try {
          const ticket = await next.lock.run(() => withTimeout(ms, (t) => to.links!.accept({ signal: t })));
          // not before the step in progress is done with this span (it comes first)
          await span.turn;
          await span.lock.run(() => withTimeout(ms, (t) => from.links!.pushTo(ticket, { signal: t })));
          if (span.link === attempt) span.link = { from, to, ticket, ok: true };
        } catch (err) {
          s.log.debug("no link between servers; the client relays", {
            from: span.server?.peerId,
            to: next.server?.peerId,
            error: errorMessage(err),
          });
        }
      })().finally(() => {
        if (span.linking === linking) span.linking = undefined;
      });
      span.linking = linking;
    }
  }

  /**
   * Whether chain[k] can push to chain[k + 1] now: both sessions open and linkable, both input
   * histories kept, and pushing wanted (the `push` option; "auto": `pushPays`).
   */
  linkable(k: number): boolean {
    const s = this.#s;
    const a = s.chain[k], b = s.chain[k + 1];
    if (!a.remote?.links || !b.remote?.links || a.opening || b.opening) return false;
    if (a.history === null || b.history === null) return false;
    const push = s.options.push ?? "auto";
    if (push !== "auto") return push;
    if (!a.server || !b.server) return false;
    return pushPays({
      bothLocal: a.remote.links.local && b.remote.links.local,
      clientRttMs: s.pings.rtt(b.server.peerId),
      serverRttMs: a.server.nextPings?.[b.server.peerId],
    });
  }

  /** Whether chain[k]'s link reaches chain[k + 1]'s current session and was not reported lost. */
  trusted(k: number): boolean {
    const a = this.#s.chain[k], b = this.#s.chain[k + 1], l = a.link;
    return !!l?.ok && l.from === a.remote && l.to === b.remote && b.remote.links?.lost(l.ticket) === false;
  }

  /**
   * How many spans after chain[i] a step of `x` can be pushed through: consecutive trusted links,
   * while the frame that carries every output of the push stays under MAX_PUSH_BYTES.
   */
  pushRun(i: number, x: Hidden): number {
    const parts = Math.floor(MAX_PUSH_BYTES / (x.data.length * 4));
    let n = 0;
    for (let k = i; k + 1 < this.#s.chain.length && n + 2 <= parts; k++) {
      if (!this.linkable(k) || !this.trusted(k)) break;
      n++;
    }
    return n;
  }
}

/** Whether `link` was established and its input side was then reported lost. */
function lostLink(link: SpanLink): boolean {
  return link.ok && link.to.links?.lost(link.ticket) === true;
}
