/**
 * Bounded retries of one span of a session: when the span's server fails (timeout, reset, error
 * frame, bad reply) it is banned and its range left without a server, so the next attempt
 * re-routes exactly that range (possibly into several spans) and the work is redone there. The
 * first retry is immediate, later ones back off; the swarm table is refreshed between attempts.
 * After the last one, a `SESSION_FAILED` error says which blocks, which servers and why. A server
 * reached through a relay whose relay failed (not the server) is reopened and replayed without a
 * ban, a few times per step. So is, once per step, a server whose session failed with its
 * connection or the server's TIMEOUT frame when the step starts the session over (a finished
 * generation's session reused by the next one, docs/architecture.md): the server may have ended it
 * while it waited.
 * @module
 */
import { errorMessage, PlumiseError, SwarmError } from "../../errors.ts";
import { type AbortOptions, sleep } from "../../util/abort.ts";
import { Backoff, type BackoffOptions } from "../../util/backoff.ts";
import { withDefaults } from "../../util/with_defaults.ts";
import { shortPeer } from "./route_inference.ts";
import type { SessionState, SpanState } from "./session_state.ts";
import type { SpanRouter } from "./span_routing.ts";
import type { RemoteSpanSession, RouteServer } from "./types.ts";

/** Runs `fn` on chain[i], replacing the span after failures, with bounded retries. */
export async function withRetries<T>(
  s: SessionState,
  router: SpanRouter,
  i: number,
  fn: (span: SpanState) => Promise<T>,
  { signal, startsOver = false }: AbortOptions & {
    /** The step starts the session over (position 0 after earlier steps): nothing to replay. */
    startsOver?: boolean;
  } = {},
): Promise<T> {
  const o = s.options;
  const maxRetries = o.maxRetries ?? 5;
  const backoff = new Backoff(withDefaults<BackoffOptions>({ initialMs: 100, maxMs: 2000 }, o.retryBackoff));
  let lastError: unknown;
  const failedPeers: string[] = [];
  const relayRetried = new Map<string, number>();
  const reopened = new Set<string>();
  /** The last refusal of the request by a server (`refusedRequest`). */
  let refusal: unknown;
  for (let attempt = 0;; attempt++) {
    signal?.throwIfAborted();
    const span = s.chain[i];
    const range = `[${span.start}, ${span.end})`;
    // whether the span had a remote session before this attempt (one opened now cannot have ended)
    const hadRemote = span.remote !== undefined;
    try {
      if (!span.server) router.reroute(i);
      return await fn(s.chain[i]);
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      if (s.closed) throw err;
      // a bug here ends the step; a server's own INTERNAL error frame is a server failure
      if (err instanceof PlumiseError && err.code === "INTERNAL" && err.details.remote !== true) throw err;
      lastError = err;
      s.stats.failures++;
      const failed = s.chain[i];
      const peer = failed.server?.peerId;
      const relayTries = peer ? relayRetried.get(peer) ?? 0 : 0;
      if (peer && relayLost(failed, err) && relayTries < (ownTimeout(err) ? 1 : RELAY_RETRIES)) {
        // the relay went away (restarted, ended the circuit at its limits), not the server: reopen
        // it (through another relay, or this one once the server holds a slot there again) and
        // replay, without banning it — a few times per step, with the usual back-off between
        relayRetried.set(peer, relayTries + 1);
        s.log.warn("relayed connection lost; reopening the server through its relays", {
          peer,
          blocks: `${failed.start}:${failed.end}`,
          attempt: relayTries + 1,
          error: errorMessage(err),
        });
        dropRemote(failed);
        if (relayTries > 0) await sleep(backoff.next(), { signal });
        continue;
      }
      if (peer && startsOver && hadRemote && mayHaveEnded(err) && !reopened.has(peer)) {
        // its remote session may have ended while the session waited for this step (the server's
        // idle timeout, a span moved): open a new one there, without banning the server, once
        reopened.add(peer);
        s.log.info("server had ended the session; reopening it", {
          peer,
          blocks: `${failed.start}:${failed.end}`,
          error: errorMessage(err),
        });
        dropRemote(failed);
        continue;
      }
      if (peer && refusedRequest(err)) {
        // the request, not the server, may be at fault: around it for this session and the
        // client's sessions at least as long, banned for none
        failedPeers.push(peer);
        s.refusedBy.add(peer);
        s.bans.refuse(peer, s.maxLength);
        refusal = err;
        s.log.warn("server refused the session's request; routing around it for this session", {
          peer,
          blocks: `${failed.start}:${failed.end}`,
          attempt: attempt + 1,
          error: errorMessage(err),
        });
        dropRemote(failed);
        failed.server = undefined;
      } else if (peer) {
        failedPeers.push(peer);
        const banMs = s.bans.ban(peer);
        s.log.warn("server failed; re-routing its blocks", {
          peer,
          blocks: `${failed.start}:${failed.end}`,
          attempt: attempt + 1,
          banMs,
          error: errorMessage(err),
        });
        dropRemote(failed);
        failed.server = undefined;
      } else if (
        refusal && failedPeers.every((p) => s.refusedBy.has(p)) &&
        err instanceof PlumiseError && err.code === "MISSING_BLOCKS"
      ) {
        // every server that failed refused the request, and none is left after the table refresh
        // that follows every failed attempt: retrying cannot help
        throw refusedError(s, range, failedPeers, attempt + 1, refusal);
      } else {
        s.log.warn("no route for blocks", {
          blocks: range,
          attempt: attempt + 1,
          error: errorMessage(err),
        });
      }
      if (attempt + 1 > maxRetries) {
        const code = err instanceof PlumiseError ? err.code : "ERROR";
        throw new SwarmError(
          "SESSION_FAILED",
          `inference for blocks ${range} of ${s.model} failed after ${attempt + 1} attempts ` +
            `(servers tried: ${failedPeers.map(shortPeer).join(", ") || "none"}): ${errorMessage(lastError)}`,
          {
            cause: lastError,
            hint: code === "MISSING_BLOCKS"
              ? "no other server covers these blocks; start one (plumise serve --block-indices …) or retry later"
              : "the servers for these blocks keep failing; retry later or check the swarm with `plumise swarm`",
            details: {
              blocks: [span.start, span.end],
              attempts: attempt + 1,
              lastCode: code,
              peers: failedPeers,
            },
          },
        );
      }
      if (attempt > 0) await sleep(backoff.next(), { signal });
      if (o.table.refresh) {
        await o.table.refresh({ signal }).catch((e) =>
          s.log.debug("table refresh failed", { error: errorMessage(e) })
        );
      }
    }
  }
}

/** Lets go of a span's remote session (the next attempt opens another); closing it never throws. */
function dropRemote(span: SpanState): void {
  const remote = span.remote;
  span.remote = undefined;
  remote?.close().catch(() => {});
}

/** Reopens of a relayed server per step before a relay failure counts against the server. */
const RELAY_RETRIES = 3;

/**
 * Whether `err` on `span` may be its relay failing rather than its server: the session's steps ran
 * through a relay (or its reopening failed on the way to a server that is reached only through
 * relays), and the error is not one the server sent (an error frame says the server itself refused
 * or failed) nor a bad reply (`BAD_REPLY`: the server's own output). The client's own timeout may be
 * either (a relay that vanished without closing the connection looks like a hung server), so it
 * counts as the relay's once per step (`ownTimeout`), then as the server's. A punched session no
 * longer depends on its relay.
 */
function relayLost(span: { remote?: RemoteSpanSession; server?: RouteServer }, err: unknown): boolean {
  const relayed = span.remote ? span.remote.path === "relayed" : span.server?.usingRelay === true;
  if (!relayed || fromServer(err)) return false;
  return !(err instanceof PlumiseError && err.code === "BAD_REPLY");
}

/** The client's own timeout (no answer in time), not a server's TIMEOUT frame. */
export function ownTimeout(err: unknown): boolean {
  return err instanceof PlumiseError && err.code === "TIMEOUT" && !fromServer(err);
}

/**
 * Whether `err` is what a session the server ended while it waited gives its next step: the
 * server's TIMEOUT frame (its idle timeout, age cap or stop), or the connection closed or reset
 * (`STREAM_CLOSED`, or the transport's own error). Not the client's own timeout or a bad reply:
 * a server that hangs or garbles is not given another session.
 */
function mayHaveEnded(err: unknown): boolean {
  if (fromServer(err)) return (err as PlumiseError).code === "TIMEOUT";
  return !(err instanceof PlumiseError) || err.code === "STREAM_CLOSED";
}

/**
 * Whether `err` is a server's refusal of the request itself: its `TOO_LONG` error frame (a
 * session longer than it takes). Any other error frame is the server's failure: a server that
 * garbles or refuses everything is banned as before.
 */
function refusedRequest(err: unknown): boolean {
  return fromServer(err) && (err as PlumiseError).code === "TOO_LONG";
}

/** The session's failure once every server for `range` refused its request. */
function refusedError(
  s: SessionState,
  range: string,
  peers: readonly string[],
  attempts: number,
  refusal: unknown,
): SwarmError {
  return new SwarmError(
    "SESSION_FAILED",
    `inference for blocks ${range} of ${s.model} failed: the servers refused the request ` +
      `(servers tried: ${peers.map(shortPeer).join(", ")}): ${errorMessage(refusal)}`,
    {
      cause: refusal,
      hint:
        "the servers take sessions of at most their model's context: send a shorter prompt or fewer new tokens",
      details: { blocks: [s.start, s.end], attempts, lastCode: "TOO_LONG", peers, refused: true },
    },
  );
}

/** Whether the server sent `err` (an error frame), rather than the connection failing. */
function fromServer(err: unknown): boolean {
  const details = err instanceof PlumiseError ? err.details as { remote?: boolean } | undefined : undefined;
  return details?.remote === true;
}
