/**
 * Test helper: an in-process swarm of fake span servers (`FakeBackend`) behind the
 * client's `SwarmTableView` + `SpanTransport`, with failure injection (kill, hang, bad replies).
 * Killed servers stay in the table, as they would in a real table until their record expires.
 * @module
 */
import { remoteError } from "../swarm/protocol_exchange.ts";
import type { AbortOptions } from "../util/abort.ts";
import { FakeBackend } from "./fake_backend.ts";
import type { HiddenStates } from "../runtime/types.ts";
import type {
  ForwardSpanRequest,
  Hidden,
  OpenSpanRequest,
  RemoteSpanSession,
  RouteServer,
  SpanStepOptions,
  SpanTransport,
  SwarmTableView,
} from "../swarm/client/types.ts";

export interface FakeServerOptions {
  inferenceRps?: number;
  throughput?: number;
  cacheTokens?: number;
  /** Announced cache (defaults to the real one). */
  cacheTokensLeft?: number;
}

export interface FakeServer {
  readonly peerId: string;
  readonly backend: FakeBackend;
  record: RouteServer;
  dead: boolean;
  /** Steps never answer (until killed). */
  hang: boolean;
  /** Replies with a wrong shape. */
  garble: boolean;
  /** Replies with a NaN in place of its last value (a server whose arithmetic broke). */
  nan: boolean;
  steps: number;
  /** Reached through a relay (its sessions say `path: "relayed"`). */
  relayed: boolean;
  readonly killers: Set<(err: Error) => void>;
  /** Ends each open remote session (`endSessions`). */
  readonly enders: Set<(how: "frame" | "closed") => void>;
}

export interface StepEvent {
  peerId: string;
  start: number;
  end: number;
  startFromPosition: number;
  tokens: number;
}

export class FakeSwarm implements SwarmTableView, SpanTransport {
  readonly model: string;
  readonly numBlocks: number;
  readonly hiddenSize: number;
  readonly servers_ = new Map<string, FakeServer>();
  /** Called before every remote step; may kill servers. */
  onStep?: (event: StepEvent) => void;
  /** Optional ping (set by a test). */
  ping?: (server: RouteServer, options?: AbortOptions) => Promise<number>;
  refreshes = 0;
  opens = 0;

  constructor(options: { model?: string; numBlocks?: number; hiddenSize?: number } = {}) {
    this.model = options.model ?? "fake/model";
    this.numBlocks = options.numBlocks ?? 9;
    this.hiddenSize = options.hiddenSize ?? 16;
  }

  async addServer(
    peerId: string,
    start: number,
    end: number,
    o: FakeServerOptions = {},
  ): Promise<FakeServer> {
    const backend = new FakeBackend({
      modelId: this.model,
      hiddenSize: this.hiddenSize,
      numBlocks: this.numBlocks,
      start,
      end,
      cacheTokens: o.cacheTokens,
    });
    await backend.start();
    const server: FakeServer = {
      peerId,
      backend,
      record: {
        peerId,
        model: this.model,
        start,
        end,
        state: "online",
        throughput: o.throughput ?? 100,
        inferenceRps: o.inferenceRps ?? 1000,
        cacheTokensLeft: o.cacheTokensLeft,
        weights: "fp32",
        version: "1.0.0",
      },
      dead: false,
      hang: false,
      garble: false,
      nan: false,
      steps: 0,
      relayed: false,
      killers: new Set(),
      enders: new Set(),
    };
    this.servers_.set(peerId, server);
    return server;
  }

  /** Like SIGKILL: every pending and future call to the server fails. */
  kill(peerId: string): void {
    const s = this.servers_.get(peerId)!;
    s.dead = true;
    for (const k of s.killers) k(new Error(`connection reset by ${peerId}`));
    s.killers.clear();
  }

  /**
   * Like a server that ended its sessions (an idle timeout, a span moved) where the client has
   * not seen it yet: the next step on each of them reads the server's TIMEOUT error frame
   * (`frame`, what a real server sends), or finds the stream closed (`closed`).
   */
  endSessions(peerId: string, how: "frame" | "closed" = "frame"): void {
    const s = this.servers_.get(peerId)!;
    for (const end of s.enders) end(how);
    s.enders.clear();
  }

  /** Like a relay going away: pending calls fail (the server itself lives on). */
  dropConnections(peerId: string): void {
    const s = this.servers_.get(peerId)!;
    for (const k of s.killers) k(new Error(`stream reset (the relay to ${peerId} went away)`));
    s.killers.clear();
  }

  /** A whole-model backend for single-process reference runs. */
  async reference(): Promise<FakeBackend> {
    const b = new FakeBackend({
      modelId: this.model,
      hiddenSize: this.hiddenSize,
      numBlocks: this.numBlocks,
    });
    await b.start();
    return b;
  }

  servers(model: string): RouteServer[] {
    return [...this.servers_.values()].map((s) => s.record).filter((r) => r.model === model);
  }

  refresh(): Promise<void> {
    this.refreshes++;
    return Promise.resolve();
  }

  #guard<T>(server: FakeServer, work: () => Promise<T>, { signal }: AbortOptions = {}): Promise<T> {
    if (server.dead) return Promise.reject(new Error(`connection refused by ${server.peerId}`));
    return new Promise<T>((resolve, reject) => {
      const kill = (err: Error) => reject(err);
      const onAbort = () => reject(signal!.reason);
      server.killers.add(kill);
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = () => {
        server.killers.delete(kill);
        signal?.removeEventListener("abort", onAbort);
      };
      if (server.hang) return;
      work().then((v) => {
        done();
        if (server.dead) reject(new Error(`connection reset by ${server.peerId}`));
        else resolve(v);
      }, (e) => {
        done();
        reject(e);
      });
    });
  }

  openInference(
    record: RouteServer,
    req: OpenSpanRequest,
    { signal }: AbortOptions = {},
  ): Promise<RemoteSpanSession> {
    const server = this.servers_.get(record.peerId)!;
    this.opens++;
    return this.#guard(server, async () => {
      const session = await server.backend.openSession({
        start: req.start,
        end: req.end,
        maxLength: req.maxLength,
        batch: req.batch,
      });
      let ended: Error | undefined;
      const end = (how: "frame" | "closed") => {
        // what the real stream's reader makes of it (protocol_exchange.ts)
        ended = remoteError(
          how === "closed" ? null : { type: "error", code: "TIMEOUT", message: "session closed: idle" },
          "result",
        );
        session.close().catch(() => {});
      };
      server.enders.add(end);
      const remote: RemoteSpanSession = {
        step: (hidden: Hidden, o: SpanStepOptions) => {
          if (ended) return Promise.reject(ended);
          this.onStep?.({
            peerId: server.peerId,
            start: req.start,
            end: req.end,
            startFromPosition: o.startFromPosition,
            tokens: hidden.shape[1],
          });
          server.steps++;
          return this.#guard(server, async () => {
            const y = await session.step(hidden as HiddenStates, { startFromPosition: o.startFromPosition });
            if (server.garble) {
              return { data: y.data.subarray(1), shape: [y.shape[0], y.shape[1] - 1, y.shape[2]] };
            }
            if (server.nan) {
              const data = y.data.slice();
              data[data.length - 1] = NaN;
              return { data, shape: y.shape };
            }
            return y;
          }, { signal: o.signal });
        },
        close: () => (server.enders.delete(end), session.close()),
        // a killed server's connection is gone (the real stream knows once it sees the reset)
        get closed() {
          return server.dead;
        },
        path: server.relayed ? "relayed" : "stream",
      };
      return remote;
    }, { signal });
  }

  forward(record: RouteServer, req: ForwardSpanRequest, { signal }: AbortOptions = {}): Promise<Hidden> {
    const server = this.servers_.get(record.peerId)!;
    return this.#guard(
      server,
      () => server.backend.forward(req.start, req.end, req.hidden, { signal }),
      { signal },
    );
  }
}
