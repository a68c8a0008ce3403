/**
 * The libp2p parts for nodes behind NAT (docs/protocol.md, "NAT and relays"): the circuit relay v2
 * transport (every node dials `/p2p-circuit` addresses; a node behind NAT listens through relays),
 * the relay (hop) service with plumise's limits, UPnP when asked for, and `NatInternals`, a small
 * service that hands the relay manager what libp2p keeps internal (the circuit transport's
 * listeners, the address manager, the count of circuits this node relays).
 *
 * libp2p's relay defaults (2 minutes and 128 KiB per circuit) end an inference session after a
 * few hundred tokens; plumise sizes them for sessions (RELAY_CIRCUIT_SECONDS, RELAY_CIRCUIT_MIB)
 * and bounds what a relay spends on strangers (RELAY_MAX_RESERVATIONS, RELAY_MAX_CIRCUITS).
 * @module
 */
import { circuitRelayServer, circuitRelayTransport } from "@libp2p/circuit-relay-v2";
import type { ConnectionGater, Listener, PeerId, Stream } from "@libp2p/interface";
import { uPnPNAT } from "@libp2p/upnp-nat";
import type { Multiaddr } from "@multiformats/multiaddr";

/** The relay (hop) protocol of circuit relay v2. */
export const RELAY_HOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/hop";
/** The stop protocol: a relay opens one such stream to the destination per circuit. */
export const RELAY_STOP_PROTOCOL = "/libp2p/circuit/relay/0.2.0/stop";

/** What a relay grants (docs/security.md, "Relay abuse limits"). */
export interface RelayLimits {
  /** Peers holding a reservation (a slot to be reached through this relay) at once. */
  readonly maxReservations: number;
  /** Circuits relayed at once, over all reservations. */
  readonly maxCircuits: number;
  /** Bytes one circuit may carry (both directions together); then the relay ends it. */
  readonly circuitBytes: number;
  /** How long one circuit may last, in ms; then the relay ends it. */
  readonly circuitMs: number;
}

/** Defaults sized for inference sessions (a session's age cap is 30 minutes). */
export const DEFAULT_RELAY_LIMITS: RelayLimits = Object.freeze({
  maxReservations: 32,
  maxCircuits: 64,
  circuitBytes: 1024 * 1024 * 1024,
  circuitMs: 30 * 60_000,
});

export interface RelayServerOptions {
  readonly limits: RelayLimits;
  /** Whether to grant reservations and circuits now (asked at each one). */
  readonly active: () => boolean;
}

/** The internal libp2p components `NatInternals` reads (typed loosely: libp2p keeps them internal). */
interface NatComponents {
  readonly transportManager: {
    listen(addrs: Multiaddr[]): Promise<void>;
    getListeners(): Listener[];
  };
  readonly addressManager: {
    getAddresses(): Multiaddr[];
    removeObservedAddr(ma: Multiaddr): void;
  };
  readonly connectionManager: {
    getConnections(peer?: PeerId): Array<{ streams: Stream[] }>;
  };
  readonly registrar: {
    handle(protocol: string, handler: unknown, options?: unknown): Promise<void>;
    unhandle(protocol: string): Promise<void>;
    getProtocols(): string[];
  };
  readonly upgrader: unknown;
}

/** What the relay manager needs of libp2p's internals. */
export class NatInternals {
  readonly #c: NatComponents;

  constructor(components: NatComponents) {
    this.#c = components;
  }

  /** Circuits this node relays right now (one outbound stop stream each). */
  activeCircuits(): number {
    let n = 0;
    for (const conn of this.#c.connectionManager.getConnections()) {
      for (const s of conn.streams) if (s.protocol === RELAY_STOP_PROTOCOL && s.direction === "outbound") n++;
    }
    return n;
  }

  /**
   * Reserves a slot on the relay at `relayAddr` (`/ip4/…/tcp/…/p2p/<relay>`, connected already)
   * and listens through it: the relayed addresses join this node's addresses, and leave them when
   * the reservation ends (the relay went away or refused to refresh it). Rejects when the relay
   * refuses the reservation.
   */
  async listenVia(relayAddr: Multiaddr): Promise<void> {
    await this.#c.transportManager.listen([relayAddr.encapsulate("/p2p-circuit")]);
  }

  /** Ends every reservation and the relayed addresses (this node no longer needs relays). */
  async closeRelayListeners(): Promise<void> {
    const circuit = this.#c.transportManager.getListeners().filter((l) => "reservationStore" in l);
    const addrs = circuit.flatMap((l) => l.getAddrs());
    await Promise.allSettled(circuit.map((l) => l.close()));
    for (const a of addrs) this.#c.addressManager.removeObservedAddr(a);
  }

  /** Whether this node currently answers the hop protocol (offers relaying). */
  get relaying(): boolean {
    return this.#c.registrar.getProtocols().includes(RELAY_HOP_PROTOCOL);
  }

  /**
   * Answers (`on`) or stops answering the hop protocol; identify tells connected peers. `relay`
   * is libp2p's relay service (its `onHop` handles a hop stream).
   */
  async setRelaying(relay: unknown, on: boolean): Promise<void> {
    if (on === this.relaying) return;
    if (!on) return await this.#c.registrar.unhandle(RELAY_HOP_PROTOCOL);
    const onHop = (relay as { onHop?: (stream: Stream, conn: unknown) => Promise<void> }).onHop;
    if (typeof onHop !== "function") throw new Error("the relay service has no hop handler");
    await this.#c.registrar.handle(RELAY_HOP_PROTOCOL, onHop, { runOnLimitedConnection: true });
  }
}

export interface NatParts {
  readonly transports: ReturnType<typeof circuitRelayTransport>[];
  readonly services: Record<string, unknown>;
  readonly connectionGater: ConnectionGater;
}

/** The transports, services and connection gater of the NAT parts. */
export function natParts(options: { relayServer?: RelayServerOptions; upnp?: boolean }): NatParts {
  let internals: NatInternals | undefined;
  const services: Record<string, unknown> = {
    nat: (components: NatComponents) => (internals = new NatInternals(components)),
  };
  const relay = options.relayServer;
  if (relay) {
    const l = relay.limits;
    services.relay = circuitRelayServer({
      reservations: {
        maxReservations: l.maxReservations,
        applyDefaultLimit: true,
        defaultDurationLimit: l.circuitMs,
        defaultDataLimit: BigInt(l.circuitBytes),
      },
      // per connection to one destination: at most every circuit
      maxOutboundStopStreams: l.maxCircuits,
    });
  }
  if (options.upnp) {
    // maps the TCP listen port on the router (UPnP IGD / NAT-PMP) and announces the external
    // address it got; whether peers can really reach it is still decided by their dial-backs
    // (reachability.ts), not by the router's word — so libp2p's own AutoNAT is not needed to
    // confirm it
    services.upnp = uPnPNAT({ autoConfirmAddress: true });
  }
  const connectionGater: ConnectionGater = relay
    ? {
      denyInboundRelayReservation: () => !relay.active(),
      denyOutboundRelayedConnection: () =>
        !relay.active() || (internals?.activeCircuits() ?? 0) >= relay.limits.maxCircuits,
    }
    : {};
  return {
    transports: [circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
    services,
    connectionGater,
  };
}
