/**
 * `RelayManager`: both sides of circuit relay for one node (docs/protocol.md, "NAT and relays").
 *
 * - Behind NAT (reachability `private`), it keeps slots reserved on `reservations` relays: peers
 *   it is connected to that answer the hop protocol, else servers whose record says they relay. A
 *   reservation puts `/p2p/<relay>/p2p-circuit` addresses into this node's addresses (and so into
 *   its signed record); when a relay goes away (its connection ends, it restarts) the reservation
 *   and its addresses go, and the next check reserves again, there or on another relay. Once the
 *   node is `public`, it gives its relays up.
 * - As a relay (RELAY_SERVICE `on`, or `auto` while the node is `public`), it answers the hop
 *   protocol within the limits of nat_services.ts; otherwise the protocol is not offered at all.
 * @module
 */
import { multiaddr } from "@multiformats/multiaddr";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import type { PlumiseLibp2p } from "./libp2p_node.ts";
import { type NatInternals, RELAY_HOP_PROTOCOL } from "./nat_services.ts";
import type { Reachability } from "./reachability.ts";

export type RelayMode = "auto" | "on" | "off";

/** A server that says it relays (from its record). */
export interface RelayCandidate {
  readonly peerId: string;
  readonly addrs: readonly string[];
}

export interface RelayManagerOptions {
  readonly node: PlumiseLibp2p;
  readonly nat: NatInternals;
  /** libp2p's relay service (present when this node may relay). */
  readonly relayService?: unknown;
  /** RELAY_SERVICE. */
  readonly mode: RelayMode;
  /** Relays to hold a slot on while behind NAT (RELAY_RESERVATIONS; 0: none). */
  readonly reservations: number;
  /** Servers whose record says they relay. */
  readonly candidates?: () => readonly RelayCandidate[];
  readonly logger?: Logger;
  readonly now?: () => number;
  /** How often reservations are checked while behind NAT (default 5 s). */
  readonly checkMs?: number;
}

/** The relay this relayed address goes through (`…/p2p/<relay>/p2p-circuit/…`), if it is one. */
export function relayOf(addr: string): string | undefined {
  const i = addr.indexOf("/p2p-circuit");
  if (i < 0) return undefined;
  const m = /\/p2p\/([^/]+)$/.exec(addr.slice(0, i));
  return m?.[1];
}

export class RelayManager {
  readonly #o: RelayManagerOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #reachability: Reachability = "unknown";
  #timer: ReturnType<typeof setInterval> | undefined;
  #ensuring: Promise<void> | undefined;
  #stopped = false;
  /** Relays that refused or failed, until when they are skipped. */
  readonly #failed = new Map<string, { until: number; n: number }>();

  constructor(options: RelayManagerOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  /** Relays this node holds a slot on (from its relayed addresses). */
  relays(): string[] {
    const self = this.#o.node.peerId.toString();
    const out = new Set<string>();
    for (const a of this.#o.node.getMultiaddrs()) {
      const r = relayOf(a.toString());
      if (r && r !== self) out.add(r);
    }
    return [...out];
  }

  /** Whether this node offers relaying right now. */
  get relaying(): boolean {
    return this.#o.relayService !== undefined && this.#o.nat.relaying;
  }

  /** Circuits this node relays right now. */
  get circuits(): number {
    return this.#o.nat.activeCircuits();
  }

  /** Applies the mode before any peer connects (`auto` starts without relaying). */
  async start(): Promise<void> {
    await this.#applyRelaying();
  }

  /** Reachability changed: relay or not, reserve or give the relays up. */
  async update(reachability: Reachability): Promise<void> {
    this.#reachability = reachability;
    if (this.#stopped) return;
    await this.#applyRelaying();
    if (reachability === "private" && this.#o.reservations > 0) {
      this.#timer ??= setInterval(() => void this.ensure(), this.#o.checkMs ?? 5_000);
      await this.ensure();
    } else {
      if (this.#timer) clearInterval(this.#timer);
      this.#timer = undefined;
      await this.#ensuring;
      if (this.relays().length) {
        this.#log.info("reachable without relays: giving the relay slots up", { relays: this.relays() });
        await this.#o.nat.closeRelayListeners();
      }
    }
  }

  async #applyRelaying(): Promise<void> {
    if (this.#o.relayService === undefined) return;
    const on = this.#o.mode === "on" || (this.#o.mode === "auto" && this.#reachability === "public");
    if (on === this.#o.nat.relaying) return;
    try {
      await this.#o.nat.setRelaying(this.#o.relayService, on);
      this.#log.info(on ? "relaying for peers behind NAT" : "not relaying", { mode: this.#o.mode });
    } catch (err) {
      this.#log.warn("cannot change the relay service", { err: errorMessage(err) });
    }
  }

  /** Reserves on more relays until `reservations` are held (one at a time); never throws. */
  ensure(): Promise<void> {
    this.#ensuring ??= this.#ensure().finally(() => (this.#ensuring = undefined));
    return this.#ensuring;
  }

  async #ensure(): Promise<void> {
    const want = this.#o.reservations;
    for (const c of await this.#candidates()) {
      if (this.#stopped || this.#reachability !== "private" || this.relays().length >= want) return;
      if (this.relays().includes(c.peerId)) continue;
      const t0 = this.#now();
      try {
        // a live direct connection first: the reservation then reuses it
        const conn = this.#o.node.getConnections().find((x) =>
          x.remotePeer.toString() === c.peerId && !x.remoteAddr.toString().includes("/p2p-circuit")
        ) ?? await this.#o.node.dial(
          c.addrs.map((a) =>
            multiaddr(a)
          ),
          { signal: AbortSignal.timeout(5_000) },
        );
        const base = conn.remoteAddr.toString();
        const addr = base.includes("/p2p/") ? base : `${base}/p2p/${c.peerId}`;
        await this.#o.nat.listenVia(multiaddr(addr));
        this.#failed.delete(c.peerId);
        this.#log.info("reserved a relay slot", { relay: c.peerId, via: addr, ms: this.#now() - t0 });
      } catch (err) {
        const n = (this.#failed.get(c.peerId)?.n ?? 0) + 1;
        this.#failed.set(c.peerId, { n, until: this.#now() + Math.min(300_000, 15_000 * 2 ** (n - 1)) });
        this.#log.debug("relay refused or unreachable", { relay: c.peerId, err: errorMessage(err) });
      }
    }
    if (this.relays().length < want && this.#reachability === "private") {
      this.#log.debug("fewer relays than wanted", { have: this.relays().length, want });
    }
  }

  /** Connected peers that answer the hop protocol first, then servers whose record says they relay. */
  async #candidates(): Promise<Array<{ peerId: string; addrs: string[] }>> {
    const node = this.#o.node;
    const self = node.peerId.toString();
    const now = this.#now();
    const skip = (id: string) => id === self || (this.#failed.get(id)?.until ?? 0) > now;
    const out: Array<{ peerId: string; addrs: string[] }> = [];
    const seen = new Set<string>();
    for (const conn of node.getConnections()) {
      const id = conn.remotePeer.toString();
      if (seen.has(id) || skip(id) || conn.remoteAddr.toString().includes("/p2p-circuit")) continue;
      try {
        const peer = await node.peerStore.get(conn.remotePeer);
        if (peer.protocols.includes(RELAY_HOP_PROTOCOL)) {
          seen.add(id);
          out.push({ peerId: id, addrs: [conn.remoteAddr.toString()] });
        }
      } catch { /* not in the peer store yet */ }
    }
    for (const c of this.#o.candidates?.() ?? []) {
      if (seen.has(c.peerId) || skip(c.peerId)) continue;
      seen.add(c.peerId);
      const addrs = c.addrs.filter((a) => !a.includes("/p2p-circuit"))
        .map((a) => a.includes("/p2p/") ? a : `${a}/p2p/${c.peerId}`);
      if (addrs.length) out.push({ peerId: c.peerId, addrs });
    }
    return out;
  }

  /** What /health and `plumise doctor` show. */
  status(): { relays: string[]; relaying: boolean; circuits: number } {
    return { relays: this.relays(), relaying: this.relaying, circuits: this.relaying ? this.circuits : 0 };
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#ensuring;
  }
}
