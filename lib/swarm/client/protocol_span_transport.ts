/**
 * Maps the swarm's thin protocol client (`ProtocolClient` / `InferenceStream`, one per server)
 * onto the client's narrow `SpanTransport`, so sessions, routing and failover run over the real
 * `/plumise/inference` and `/plumise/forward` protocols.
 * @module
 */
import type { ProtocolClient } from "../swarm_client_transport.ts";
import type {
  ForwardSpanRequest,
  Hidden,
  OpenSpanRequest,
  RemoteSpanSession,
  RouteServer,
  SpanStepOptions,
  SpanTransport,
} from "./types.ts";

export interface ProtocolSpanTransportOptions {
  /** The protocol client for a server (dialing it by its peer id / addresses). */
  readonly clientFor: (server: RouteServer) => ProtocolClient;
  /** RTT to a server in ms (e.g. libp2p ping); optional. */
  readonly ping?: (server: RouteServer, signal?: AbortSignal) => Promise<number>;
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
  /** Send → result at the client. */
  readonly roundTripMs: number;
}

export class ProtocolSpanTransport implements SpanTransport {
  readonly #o: ProtocolSpanTransportOptions;
  readonly ping?: (server: RouteServer, signal?: AbortSignal) => Promise<number>;

  constructor(options: ProtocolSpanTransportOptions) {
    this.#o = options;
    if (options.ping) this.ping = options.ping;
  }

  async openInference(
    server: RouteServer,
    request: OpenSpanRequest,
    signal?: AbortSignal,
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
    }, signal);
    return {
      step: async (hidden: Hidden, options: SpanStepOptions) => {
        const t0 = performance.now();
        const r = await stream.step(hidden, {
          startFromPosition: options.startFromPosition,
          signal: options.signal,
        });
        this.#o.onStep?.({
          peerId: server.peerId,
          start: request.start,
          end: request.end,
          tokens: hidden.shape[1],
          computeMs: r.computeMs,
          roundTripMs: performance.now() - t0,
        });
        return r.hidden;
      },
      close: () => stream.close(),
    };
  }

  async forward(server: RouteServer, request: ForwardSpanRequest, signal?: AbortSignal): Promise<Hidden> {
    const r = await this.#o.clientFor(server).forward({ ...request, dtype: this.#o.dtype }, signal);
    return r.hidden;
  }
}
