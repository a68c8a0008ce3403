/**
 * Maps the swarm's thin protocol client (`ProtocolClient` / `InferenceStream`, one per server)
 * onto the client's narrow `SpanTransport`, so sessions, routing and failover run over the real
 * `/plumise/inference` and `/plumise/forward` protocols.
 * @module
 */
import type { AbortOptions } from "../../util/abort.ts";
import { isLoopbackAddress } from "../../wire/mod.ts";
import type { LinkTicket, ProtocolClient } from "../swarm_client_transport.ts";
import type {
  ForwardSpanRequest,
  Hidden,
  OpenSpanRequest,
  RemoteSpanSession,
  RouteServer,
  SpanLinks,
  SpanStepOptions,
  SpanTransport,
} from "./types.ts";

export interface ProtocolSpanTransportOptions {
  /** The protocol client for a server (dialing it by its peer id / addresses). */
  readonly clientFor: (server: RouteServer) => ProtocolClient;
  /** RTT to a server in ms (e.g. libp2p ping); optional. */
  readonly ping?: (server: RouteServer, options?: AbortOptions) => Promise<number>;
  /** Wire dtype of hidden states (default f32). */
  readonly dtype?: "f32" | "f16";
  /** The client's chain address, sent with `open` (receipts/rewards). */
  readonly wallet?: string;
  /** Told of every remote step: the server's compute time and the client's round trip (ms). */
  readonly onStep?: (event: RemoteStepTiming) => void;
}

/** One remote step as the client saw it. */
export interface RemoteStepTiming {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  readonly tokens: number;
  /** Server-reported compute time. */
  readonly computeMs: number;
  /** Send → result at the client (for the reply that ends a push: from when the client began waiting for it). */
  readonly roundTripMs: number;
}

/** Whether `host` is this machine's loopback (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host.toLowerCase() === "localhost" || isLoopbackAddress(host);
}

export class ProtocolSpanTransport implements SpanTransport {
  readonly #o: ProtocolSpanTransportOptions;
  readonly ping?: (server: RouteServer, options?: AbortOptions) => Promise<number>;

  constructor(options: ProtocolSpanTransportOptions) {
    this.#o = options;
    if (options.ping) this.ping = options.ping;
  }

  async openInference(
    server: RouteServer,
    request: OpenSpanRequest,
    { signal }: AbortOptions = {},
  ): Promise<RemoteSpanSession> {
    const stream = await this.#o.clientFor(server).openInference({
      sessionId: request.sessionId,
      model: request.model,
      start: request.start,
      end: request.end,
      maxLength: request.maxLength,
      batch: request.batch,
      dtype: this.#o.dtype,
      wallet: this.#o.wallet,
    }, { signal });
    const report = (t0: number, computeMs: number, tokens: number) =>
      this.#o.onStep?.({
        peerId: server.peerId,
        start: request.start,
        end: request.end,
        tokens,
        computeMs,
        roundTripMs: performance.now() - t0,
      });
    const links: SpanLinks | undefined = stream.linkable
      ? {
        local: isLoopbackHost(stream.directHost!),
        accept: (options) => stream.linkRequest(options),
        pushTo: (ticket, options) => stream.linkTo(ticket as LinkTicket, options),
        lost: (ticket) => stream.linkLost((ticket as LinkTicket).link),
        send: (hidden, options) =>
          stream.send(hidden, {
            stepId: options.stepId,
            startFromPosition: options.startFromPosition,
            push: options.push,
            signal: options.signal,
          }),
        async receive(stepId, options) {
          const t0 = performance.now();
          const r = await stream.receive(stepId, {
            pushed: options.pushed,
            link: (options.ticket as LinkTicket | undefined)?.link,
            signal: options.signal,
            until: options.until,
          });
          if (typeof r === "object") report(t0, r.computeMs, r.hidden.shape[1]);
          return r;
        },
      }
      : undefined;
    return {
      async step(hidden: Hidden, options: SpanStepOptions) {
        const t0 = performance.now();
        const r = await stream.step(hidden, {
          stepId: options.stepId,
          startFromPosition: options.startFromPosition,
          signal: options.signal,
        });
        report(t0, r.computeMs, hidden.shape[1]);
        return r.hidden;
      },
      close: () => stream.close(),
      get closed() {
        return stream.closed;
      },
      path: stream.path,
      ...(links ? { links } : {}),
    };
  }

  async forward(
    server: RouteServer,
    request: ForwardSpanRequest,
    { signal }: AbortOptions = {},
  ): Promise<Hidden> {
    const r = await this.#o.clientFor(server).forward({ ...request, dtype: this.#o.dtype }, { signal });
    return r.hidden;
  }
}
