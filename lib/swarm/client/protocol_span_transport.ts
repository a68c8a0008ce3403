/**
 * Maps the swarm's thin protocol client (`ProtocolClient` / `InferenceStream`, one per server)
 * onto the client's narrow `SpanTransport`, so sessions, routing and failover run over the real
 * `/plumise/inference` and `/plumise/forward` protocols.
 * @module
 */
import type { LinkTicket, ProtocolClient, StepResult } from "../swarm_client_transport.ts";
import type {
  ForwardSpanRequest,
  Hidden,
  OpenSpanRequest,
  PushedStepResult,
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
  /** Send → result at the client (for a pushed step: from when the client began waiting for it). */
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
    const timed = (t0: number, r: StepResult, tokens: number): PushedStepResult => {
      this.#o.onStep?.({
        peerId: server.peerId,
        start: request.start,
        end: request.end,
        tokens,
        computeMs: r.computeMs,
        roundTripMs: performance.now() - t0,
      });
      return { hidden: r.hidden, forwarded: r.forwarded === true };
    };
    const step = async (hidden: Hidden, options: SpanStepOptions & { push?: number }) => {
      const t0 = performance.now();
      const r = await stream.step(hidden, {
        stepId: options.stepId,
        startFromPosition: options.startFromPosition,
        push: options.push,
        signal: options.signal,
      });
      return timed(t0, r, hidden.shape[1]);
    };
    const links: SpanLinks | undefined = stream.linkable
      ? {
        accept: (signal) => stream.linkRequest(signal),
        pushTo: (ticket, signal) => stream.linkTo(ticket as LinkTicket, signal),
        step,
        async receive(stepId, signal) {
          const t0 = performance.now();
          const r = await stream.receivePushed(stepId, signal);
          return r && timed(t0, r, r.hidden.shape[1]);
        },
        get lost() {
          return stream.linksLost;
        },
      }
      : undefined;
    return {
      step: async (hidden: Hidden, options: SpanStepOptions) => (await step(hidden, options)).hidden,
      close: () => stream.close(),
      ...(links ? { links } : {}),
    };
  }

  async forward(server: RouteServer, request: ForwardSpanRequest, signal?: AbortSignal): Promise<Hidden> {
    const r = await this.#o.clientFor(server).forward({ ...request, dtype: this.#o.dtype }, signal);
    return r.hidden;
  }
}
