/**
 * `PeerNat`: the NAT side of a `SwarmPeer` (docs/protocol.md, "NAT and relays"), wired onto its
 * libp2p node: it answers reachability requests (dial_back.ts), keeps this node's reachability
 * (reachability_monitor.ts, listening nodes only) and acts on it (relay_manager.ts: relay slots
 * behind NAT, the relay service when reachable), and tells the node's public address to the hole
 * punch (asked of a connected peer when this node does not listen).
 * @module
 */
import type { Connection } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr } from "@multiformats/multiaddr";
import { errorMessage } from "../errors.ts";
import { type AbortOptions, timeoutSignal } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import type { ReachMessage } from "../wire/mod.ts";
import { askReach, DialBackService } from "./dial_back.ts";
import { directHost } from "./direct_paths.ts";
import type { FrameChannel } from "./frame_channel.ts";
import type { PlumiseLibp2p } from "./libp2p_node.ts";
import type { NatInternals } from "./nat_services.ts";
import { REACH_PROTOCOL } from "./protocol_ids.ts";
import { type NatScope, onInternet, type ReachabilityStatus, UNKNOWN_REACHABILITY } from "./reachability.ts";
import { ReachabilityMonitor } from "./reachability_monitor.ts";
import { type RelayCandidate, RelayManager, type RelayMode } from "./relay_manager.ts";

/** The NAT settings of a node (RELAY_* and HOLE_PUNCH keys). */
export interface NatOptions {
  /** RELAY_SERVICE (default auto). */
  readonly relayService?: RelayMode;
  /** RELAY_RESERVATIONS: relays to hold a slot on behind NAT (default 2). */
  readonly reservations?: number;
  /** HOLE_PUNCH: upgrade relayed sessions by TCP hole punching (default true). */
  readonly holePunch?: boolean;
  /** NAT_SCOPE: which addresses count as the internet (default public; see `NatScope`). */
  readonly scope?: NatScope;
  /** Reachability re-check periods (tests). */
  readonly recheckMs?: { readonly decided?: number; readonly unknown?: number };
}

/** What /health, `plumise swarm` and `plumise doctor` show about this node's reachability. */
export interface NatStatus {
  readonly reachability: ReachabilityStatus;
  /** Relays this node holds a slot on (behind NAT). */
  readonly relays: readonly string[];
  /** Whether it relays for others now. */
  readonly relaying: boolean;
  /** Circuits it relays now. */
  readonly circuits: number;
}

export interface PeerNatDeps {
  readonly node: PlumiseLibp2p;
  readonly options: NatOptions;
  /** Whether this node listens (only then is its reachability checked). */
  readonly listening: boolean;
  /** Frame channel over a raw stream (the peer's limits). */
  readonly channel: (stream: Parameters<Parameters<PlumiseLibp2p["handle"]>[1]>[0]) => FrameChannel;
  /** Servers whose record says they relay. */
  readonly candidates: () => readonly RelayCandidate[];
  readonly logger?: Logger;
}

/** The host a connection reached its peer at (undefined: relayed). */
export function connectionHost(conn: Connection): string | undefined {
  return directHost(conn.remoteAddr.getComponents());
}

export class PeerNat {
  readonly dialBack: DialBackService;
  readonly monitor: ReachabilityMonitor | undefined;
  readonly relays: RelayManager;
  readonly #d: PeerNatDeps;
  readonly #log: Logger;
  #observed: { host: string; at: number } | undefined;
  #asking: Promise<string | undefined> | undefined;
  #stopped = false;

  constructor(deps: PeerNatDeps) {
    this.#d = deps;
    this.#log = deps.logger ?? silentLogger;
    const node = deps.node;
    this.dialBack = new DialBackService({
      dial: async (host, port, peerId, { signal }) => {
        const family = host.includes(":") ? "ip6" : "ip4";
        const conn = await node.dial(multiaddr(`/${family}/${host}/tcp/${port}/p2p/${peerId}`), {
          signal,
          force: true,
        });
        await conn.close().catch(() => conn.abort(new Error("dial-back done")));
      },
      dialable: (host) => onInternet(host, deps.options.scope),
    });
    const services = node.services as { nat: NatInternals; relay?: unknown };
    this.relays = new RelayManager({
      node,
      nat: services.nat,
      relayService: services.relay,
      mode: deps.options.relayService ?? "auto",
      reservations: deps.options.reservations ?? 2,
      candidates: deps.candidates,
      logger: this.#log,
    });
    if (deps.listening) {
      this.monitor = new ReachabilityMonitor({
        logger: this.#log,
        scope: deps.options.scope,
        intervalMs: deps.options.recheckMs?.decided,
        retryMs: deps.options.recheckMs?.unknown,
        probe: {
          candidates: () =>
            node.getConnections().flatMap((c) => {
              const host = connectionHost(c);
              return host ? [{ peerId: c.remotePeer.toString(), host }] : [];
            }),
          ask: (peerId, port, signal) => this.ask(peerId, port, signal),
          listenPort: () => this.listenPort(),
        },
      });
      this.monitor.onChange((s) => {
        if (s.observedHost) this.#observed = { host: s.observedHost, at: Date.now() };
        void this.relays.update(s.status);
      });
    }
  }

  /** Installs the protocol handler and starts the checks (after the node started). */
  async start(): Promise<void> {
    const node = this.#d.node;
    await node.handle(REACH_PROTOCOL, (stream, conn) => {
      const ch = this.#d.channel(stream);
      void this.dialBack.serve(ch, { peerId: conn.remotePeer.toString(), host: connectionHost(conn) });
    }, { runOnLimitedConnection: true });
    await this.relays.start();
    if (this.monitor) {
      node.addEventListener("peer:connect", () => this.monitor?.peerConnected());
      this.monitor.start();
    }
  }

  /** The TCP port this node listens on. */
  listenPort(): number | undefined {
    for (const a of this.#d.node.getMultiaddrs()) {
      const s = a.toString();
      if (s.includes("/p2p-circuit")) continue;
      const m = /\/tcp\/(\d+)/.exec(s);
      if (m) return Number(m[1]);
    }
    return undefined;
  }

  /** Asks `peerId` (connected or dialable by id) how it sees this node, and to dial `port` back. */
  async ask(peerId: string, port: number | undefined, { signal }: AbortOptions = {}): Promise<ReachMessage> {
    const stream = await this.#d.node.dialProtocol(peerIdFromString(peerId), REACH_PROTOCOL, {
      signal,
      runOnLimitedConnection: true,
    });
    return await askReach(this.#d.channel(stream), port, { signal });
  }

  /**
   * This node's public address as peers see it: the reachability monitor's, or (for a node that
   * does not listen) asked of the directly connected peers at once, the first public answer within
   * `ms` (default 3 s) winning, and kept 10 minutes (a wrong one only makes a punch fail).
   */
  async observedHost(
    { signal, ms = 3_000 }: AbortOptions & { ms?: number } = {},
  ): Promise<string | undefined> {
    const fromMonitor = this.monitor?.status.observedHost;
    if (fromMonitor) return fromMonitor;
    if (this.#observed && Date.now() - this.#observed.at < 600_000) return this.#observed.host;
    this.#asking ??= this.#askObserved(ms, { signal }).finally(() => (this.#asking = undefined));
    return await this.#asking;
  }

  async #askObserved(ms: number, { signal }: AbortOptions = {}): Promise<string | undefined> {
    const peers = this.#d.node.getConnections().filter((c) => connectionHost(c)).map((c) =>
      c.remotePeer.toString()
    );
    if (this.#stopped || peers.length === 0) return undefined;
    const t = timeoutSignal(ms, signal);
    try {
      return await new Promise<string | undefined>((resolve) => {
        let left = peers.length;
        const none = () => --left === 0 && resolve(undefined);
        t.signal.addEventListener("abort", () => resolve(undefined), { once: true });
        for (const peer of new Set(peers)) {
          this.ask(peer, undefined, { signal: t.signal }).then((reply) => {
            if (reply.host && onInternet(reply.host, this.#d.options.scope)) {
              this.#observed = { host: reply.host, at: Date.now() };
              resolve(reply.host);
            } else none();
          }, (err) => {
            this.#log.debug("cannot learn this node's address from a peer", { err: errorMessage(err) });
            none();
          });
        }
      });
    } finally {
      t.clear();
    }
  }

  status(): NatStatus {
    return { reachability: this.monitor?.status ?? UNKNOWN_REACHABILITY, ...this.relays.status() };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.monitor?.stop();
    await this.relays.stop();
  }
}
