/**
 * `delayedTransport`: a swarm client's span transport as if the client were `oneWayMs` away from
 * every server (a client on a home connection, servers in one data centre), while the servers
 * stay as close to each other as they are. Every message between the client and a server arrives
 * `oneWayMs` later; pushes between servers are not delayed. Used by `bench:swarm
 * --client-latency-ms` to measure what server-to-server push saves where it matters.
 * @module
 */
import type { PushReply, RemoteSpanSession, SpanLinks, SpanTransport } from "../lib/swarm/client/types.ts";
import { type AbortOptions, sleep } from "../lib/util/abort.ts";

/**
 * Wraps `inner` so that each client ↔ server message takes `oneWayMs` more (`wait` does the
 * waiting: tests pass a recorder).
 */
export function delayedTransport(
  inner: SpanTransport,
  oneWayMs: number,
  wait: (ms: number, options?: AbortOptions) => Promise<void> = sleep,
): SpanTransport {
  if (!(Number.isFinite(oneWayMs) && oneWayMs >= 0)) {
    throw new RangeError(`oneWayMs must be a finite number ≥ 0, got ${oneWayMs}`);
  }
  const go = (signal?: AbortSignal) => oneWayMs > 0 ? wait(oneWayMs, { signal }) : Promise.resolve();
  /** A request and its reply: one delay each way. */
  const roundTrip = async <T>(signal: AbortSignal | undefined, f: () => Promise<T>): Promise<T> => {
    await go(signal);
    const r = await f();
    await go(signal);
    return r;
  };
  const wrap = (remote: RemoteSpanSession): RemoteSpanSession => {
    const links = remote.links;
    const delayedLinks: SpanLinks | undefined = links && {
      local: links.local,
      accept: (options) => roundTrip(options?.signal, () => links.accept(options)),
      pushTo: (ticket, options) => roundTrip(options?.signal, () => links.pushTo(ticket, options)),
      lost: (ticket) => links.lost(ticket),
      async send(hidden, options) {
        await go(options.signal);
        await links.send(hidden, options);
      },
      async receive(stepId, options): Promise<PushReply | "lost" | undefined> {
        const r = await links.receive(stepId, options);
        if (typeof r === "object") await go(options.signal);
        return r;
      },
    };
    return {
      step: (hidden, options) => roundTrip(options.signal, () => remote.step(hidden, options)),
      close: () => remote.close(),
      ...(delayedLinks ? { links: delayedLinks } : {}),
    };
  };
  return {
    openInference: (server, request, options) =>
      roundTrip(options?.signal, async () => wrap(await inner.openInference(server, request, options))),
    forward: (server, request, options) =>
      roundTrip(options?.signal, () => inner.forward(server, request, options)),
    ...(inner.ping
      ? { ping: async (server, options) => (await inner.ping!(server, options)) + 2 * oneWayMs }
      : {}),
  };
}
