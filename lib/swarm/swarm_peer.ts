/**
 * `SwarmPeer`: a libp2p node plus the swarm table and its dissemination. Records spread by
 * a push protocol (`/plumise/record/1.0.0`, flooded to every connected peer, de-duplicated
 * by the table's newest-`seq` rule so floods stop) and a pull protocol
 * (`/plumise/table/1.0.0`) that a node runs against every peer it connects to, so a node
 * joining via one bootstrap peer has the full table as soon as that pull returns.
 *
 * Bounded against floods (docs/protocol.md, "Records"): records are offered to the table with
 * their provenance (the delivering peer and its address), so one source adds only so many new
 * peers per minute; only records of peers this node reached itself (a connection with them) are
 * passed on, by flood (`RecordFlooder`: at most one per peer per second and 50 per second in
 * all) or in table replies (which fit the frame cap, online and newest first); a listening node
 * dials the peers of relayed records once (`RecordProber`) so that real servers become reachable
 * and spread beyond their first hop.
 * Used by the server (`SwarmServer`) and by observers (`plumise swarm`).
 * @module
 */
import type { Connection, PeerId, PrivateKey, Stream } from "@libp2p/interface";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { SwarmError } from "../errors.ts";
import { type AbortOptions, timeoutSignal } from "../util/abort.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { addressGroup, type SignedRecordWire, type WireLimits, wireLimits } from "../wire/mod.ts";
import { type FrameChannel, streamFrameChannel } from "./frame_channel.ts";
import { PENDING_FRAME_BUDGET } from "../wire/byte_budget.ts";
import { directHost, DirectPaths } from "./direct_paths.ts";
import { createLibp2pNode, parsePeerAddrs, type PlumiseLibp2p } from "./libp2p_node.ts";
import { DEFAULT_RELAY_LIMITS, type RelayLimits } from "./nat_services.ts";
import { type NatOptions, type NatStatus, PeerNat } from "./peer_nat.ts";
import { RECORD_PROTOCOL, TABLE_PROTOCOL } from "./protocol_ids.ts";
import { TableServer } from "./table_server.ts";
import { ProtocolClient } from "./swarm_client_transport.ts";
import { SwarmTable } from "./swarm_table.ts";
import { RecordFlooder } from "./record_flooder.ts";
import { RecordProber } from "./record_prober.ts";
import { closeWithin, DEFAULT_WRITE_MS, readFirst, replyError } from "./stream_replies.ts";
import { protocolMessage, toProtocolCode } from "../wire/mod.ts";

/** The multiaddrs of a record, each ending in /p2p/<peer id>. */
export function dialAddrs(r: { peerId: string; addrs?: readonly string[] }): Multiaddr[] {
  return (r.addrs ?? []).map((a) => multiaddr(a.includes("/p2p/") ? a : `${a}/p2p/${r.peerId}`));
}

export interface SwarmPeerOptions {
  privateKey: PrivateKey;
  host?: string;
  port?: number;
  announceIp?: string;
  initialPeers?: readonly string[];
  maxFrameBytes?: number;
  logger?: Logger;
  now?: () => number;
  /** Run the kad-dht (default true). */
  dht?: boolean;
  /** Do not listen (observers). */
  noListen?: boolean;
  /** How often expired records are dropped (default 1 s). */
  pruneMs?: number;
  /** Yamux stream inactivity timeout. */
  streamInactivityMs?: number;
  /** Timeout of one table pull / record push (default 5 s). */
  requestMs?: number;
  /** Protocol negotiation timeout of a stream (libp2p's default 10 s); see `Libp2pNodeOptions`. */
  negotiationTimeoutMs?: number;
  /** As a client, use the direct paths servers offer for inference sessions (default true). */
  direct?: boolean;
  /** As a client, allow plain frames on loopback direct paths and links (default true; see `DirectPathsOptions`). */
  plainLoopback?: boolean;
  /** Most peers in the swarm table (default 10 000; see `SwarmTableOptions`). */
  maxRecords?: number;
  /** Dial the peers of relayed records to make them reachable (default: when listening). */
  probeRecords?: boolean;
  /** Reachability, relays and hole punching (peer_nat.ts). */
  nat?: NatOptions;
  /** What this node grants as a relay (RELAY_MAX_* keys; default DEFAULT_RELAY_LIMITS). */
  relayLimits?: RelayLimits;
  /** Ask the router to forward the listen port (UPnP / NAT-PMP; `--upnp`). */
  upnp?: boolean;
}

/** Streams of a one-shot protocol (info, table, record) one connection may hold at once. */
export const ONE_SHOT_STREAMS = 64;
/**
 * Streams of a session protocol (inference, forward) one connection may hold at once, at least
 * (a server with more sessions than that allows its sessions and a little more).
 */
export const SESSION_STREAMS = 512;

/** The source key of a connection's remote address (its IP, or its IPv6 /64; see `addressGroup`). */
export function connectionSource(conn: Connection): string {
  const first = conn.remoteAddr.getComponents()[0];
  return first?.value && (first.name === "ip4" || first.name === "ip6")
    ? addressGroup(first.value)
    : "unknown";
}

export class SwarmPeer {
  readonly table: SwarmTable;
  readonly limits: WireLimits;
  /** Which servers' direct paths this peer tries as a client (remembers failures). */
  readonly directPaths: DirectPaths;
  readonly #o: SwarmPeerOptions;
  readonly #logger: Logger;
  #node: PlumiseLibp2p | undefined;
  #pruneTimer: ReturnType<typeof setInterval> | undefined;
  #stopping = false;
  #ownRecord: SignedRecordWire | undefined;
  readonly #inflight = new Set<Promise<unknown>>();
  #initialReached = 0;
  readonly #flooder: RecordFlooder;
  #prober: RecordProber | undefined;
  #nat: PeerNat | undefined;

  constructor(options: SwarmPeerOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
    this.limits = wireLimits(options.maxFrameBytes);
    this.directPaths = new DirectPaths({
      enabled: options.direct ?? true,
      plainLoopback: options.plainLoopback ?? true,
    });
    this.table = new SwarmTable({ now: options.now, logger: this.#logger, maxRecords: options.maxRecords });
    this.#flooder = new RecordFlooder({
      send: (record, except) => this.#flood(record, except),
      now: options.now,
    });
    // a record that became reachable (its peer connected, or a probe reached it) is passed on
    this.table.onChange((e) => {
      // (by relaying nodes only: a client or observer has nobody to tell)
      if (e.type !== "reachable" || !this.#node || !this.#prober) return;
      const entry = this.table.get(e.record.peerId);
      if (entry) this.#flooder.flood(e.record.peerId, entry.signed);
    });
  }

  get node(): PlumiseLibp2p {
    if (!this.#node) {
      throw new SwarmError("NOT_STARTED", "the swarm peer is not started", { hint: "call start() first" });
    }
    return this.#node;
  }

  /** Round-trip time in ms to the server of `record` (libp2p ping over its announced addresses). */
  ping(
    record: { peerId: string; addrs?: readonly string[] },
    { signal }: AbortOptions = {},
  ): Promise<number> {
    const ping = (this.node.services as {
      ping: { ping(to: Multiaddr[], o?: { signal?: AbortSignal }): Promise<number> };
    }).ping;
    return ping.ping(dialAddrs(record), { signal });
  }

  get peerId(): string {
    return this.node.peerId.toString();
  }

  /** Reachability, relays and the public address (after `start`). */
  get nat(): PeerNat {
    if (!this.#nat) {
      throw new SwarmError("NOT_STARTED", "the swarm peer is not started", { hint: "call start() first" });
    }
    return this.#nat;
  }

  /** Whether inference sessions relayed to or from this peer may be upgraded by hole punching. */
  get holePunch(): boolean {
    return this.#o.nat?.holePunch ?? true;
  }

  /** This node's reachability and relays (unknown before `start`). */
  natStatus(): NatStatus | undefined {
    return this.#nat?.status();
  }

  /** Calls `fn` when this node's own addresses change (a relay slot gained or lost, a new listener). */
  onAddressesChanged(fn: () => void): void {
    this.node.addEventListener("self:peer:update", () => fn());
  }

  /** How many initial peers answered the table pull during `start()`. */
  get initialPeersReached(): number {
    return this.#initialReached;
  }

  /** Listen addresses with /p2p/<peer id>. */
  multiaddrs(): string[] {
    return this.node.getMultiaddrs().map(String);
  }

  /** Starts libp2p, serves the table/record protocols, dials the initial peers and pulls their tables. */
  async start({ signal }: AbortOptions = {}): Promise<void> {
    if (this.#node) return;
    const node = await createLibp2pNode({
      privateKey: this.#o.privateKey,
      host: this.#o.host,
      port: this.#o.port,
      announceIp: this.#o.announceIp,
      initialPeers: this.#o.initialPeers,
      maxFrameBytes: this.limits.maxFrameBytes,
      dht: this.#o.dht,
      noListen: this.#o.noListen,
      streamInactivityMs: this.#o.streamInactivityMs,
      negotiationTimeoutMs: this.#o.negotiationTimeoutMs,
      upnp: this.#o.upnp,
      relayServer: (this.#o.nat?.relayService ?? "auto") === "off" ? undefined : {
        limits: this.#o.relayLimits ?? DEFAULT_RELAY_LIMITS,
        active: () => this.#nat?.relays.relaying ?? false,
      },
    });
    this.#node = node;
    await node.start();
    this.#nat = new PeerNat({
      node,
      options: this.#o.nat ?? {},
      listening: !this.#o.noListen,
      channel: (stream) => streamFrameChannel(stream, this.limits),
      candidates: () =>
        this.table.entries().map((e) => e.record).filter((r) =>
          r.relay === true && r.state !== "offline" && r.peerId !== node.peerId.toString()
        ),
      logger: this.#logger,
    });
    await this.#nat.start();
    const tables = new TableServer(this.table, this.limits);
    await this.handle(TABLE_PROTOCOL, (ch, conn) => tables.serve(ch, conn.remotePeer.toString()));
    await this.handle(RECORD_PROTOCOL, (ch, conn) => this.#serveRecord(ch, conn));
    if (this.#o.probeRecords ?? !this.#o.noListen) {
      this.#prober = new RecordProber({
        dial: async (peerId, addrs, { signal }) => {
          const ma = dialAddrs({ peerId, addrs });
          await node.dial(ma, { signal });
        },
        onResult: (peerId, ok) => (ok ? this.table.touch(peerId) : this.table.unreachable(peerId)),
      });
    }
    node.addEventListener("peer:connect", (evt) => {
      const peer = (evt as CustomEvent<PeerId>).detail;
      this.table.touch(peer.toString());
      // a probe only proves the peer's key; its table is not pulled (that would make every probe
      // a full table exchange)
      if (!this.#prober?.probing(peer.toString())) this.#track(this.#syncWith(peer));
    });
    this.#pruneTimer = setInterval(() => {
      this.table.prune();
      this.#probeSome();
    }, this.#o.pruneMs ?? 1000);
    // Bootstrap: dial each initial peer and pull its table before start() resolves.
    const peers = parsePeerAddrs(this.#o.initialPeers ?? []);
    const results = await Promise.allSettled(peers.map(async (ma) => {
      const t = timeoutSignal(this.#o.requestMs ?? 5000, signal);
      try {
        const conn = await node.dial(ma, { signal: t.signal });
        if (await this.#syncWith(conn.remotePeer)) this.#initialReached++;
      } finally {
        t.clear();
      }
    }));
    results.forEach((r, i) => {
      if (r.status === "rejected") {
        this.#logger.warn("initial peer unreachable", { peer: peers[i].toString(), err: r.reason });
      }
    });
    this.#logger.info("swarm peer started", {
      peerId: this.peerId,
      addrs: this.multiaddrs(),
      records: this.table.size,
    });
  }

  /**
   * Registers a protocol handler that gets a frame channel; errors are logged, never thrown. One
   * connection may hold `maxInboundStreams` streams of the protocol at once (default
   * `ONE_SHOT_STREAMS`; a stream beyond is refused by libp2p): each may hold an incomplete frame's
   * free allowance outside the frame budget.
   */
  async handle(
    protocol: string,
    fn: (ch: FrameChannel, connection: Connection) => Promise<void>,
    { maxInboundStreams = ONE_SHOT_STREAMS }: { maxInboundStreams?: number } = {},
  ): Promise<void> {
    await this.node.handle(protocol, (stream, connection) => {
      const relayed = connection.remoteAddr.getComponents().some((c) => c.name === "p2p-circuit");
      const ch = streamFrameChannel(
        stream,
        this.limits,
        undefined,
        relayed,
        PENDING_FRAME_BUDGET,
        connection.remotePeer.toString(),
      );
      this.#track(
        fn(ch, connection).catch((err) => {
          this.#logger.debug("stream handler failed", { protocol, err });
          ch.abort();
        }),
      );
    }, { maxInboundStreams, maxOutboundStreams: 4096, runOnLimitedConnection: true });
  }

  /** Opens a raw libp2p stream to a peer (peer id or multiaddr) for `protocol`. */
  async dialStream(target: string, protocol: string, { signal }: AbortOptions = {}): Promise<Stream> {
    return (await this.#dial(target, protocol, { signal })).stream;
  }

  async #dial(
    target: string,
    protocol: string,
    { signal }: AbortOptions = {},
  ): Promise<{ stream: Stream; host?: string; relayed: boolean }> {
    const dest = target.startsWith("/") ? multiaddr(target) : await this.#peerIdFor(target);
    const conn = await this.node.dial(dest, { signal });
    // relayed connections are "limited" in libp2p: every plumise protocol runs on them
    const stream = await conn.newStream(protocol, { signal, runOnLimitedConnection: true });
    const relayed = conn.remoteAddr.getComponents().some((c) => c.name === "p2p-circuit");
    return { stream, host: directHost(conn.remoteAddr.getComponents()), relayed };
  }

  /** A protocol client for one peer (peer id string or multiaddr with /p2p/). */
  client(target: string, timeouts?: ConstructorParameters<typeof ProtocolClient>[1]): ProtocolClient {
    return new ProtocolClient(
      async (protocol, signal) => {
        const { stream, host, relayed } = await this.#dial(target, protocol, signal);
        return streamFrameChannel(stream, this.limits, host, relayed, PENDING_FRAME_BUDGET, target);
      },
      timeouts,
      {
        directPaths: this.directPaths,
        limits: this.limits,
        ...(this.holePunch
          ? {
            punch: {
              publicHost: (options) => this.nat.observedHost(options),
              limits: this.limits,
              scope: this.#o.nat?.scope,
              // a NAT that defeats punching stays so: try that server again a minute later
              shouldTry: () => this.directPaths.shouldTry(`punch/${target}`, 0),
              failed: () => this.directPaths.failed(`punch/${target}`, 0),
            },
          }
          : {}),
      },
    );
  }

  async #peerIdFor(peer: string): Promise<PeerId> {
    const { peerIdFromString } = await import("@libp2p/peer-id");
    const id = peerIdFromString(peer);
    // make sure we know addresses: from the table when libp2p does not have them
    const entry = this.table.get(peer);
    if (entry && !this.node.getConnections(id).length) {
      try {
        await this.node.peerStore.merge(id, { multiaddrs: entry.record.addrs.map((a) => multiaddr(a)) });
      } catch { /* best effort */ }
    }
    return id;
  }

  /** Offers a record locally and floods it to every connected peer. */
  async publish(record: SignedRecordWire, own = true): Promise<void> {
    if (own) this.#ownRecord = record;
    await this.table.offer(record);
    await this.#flood(record, undefined);
  }

  async #flood(record: SignedRecordWire, except: string | undefined): Promise<void> {
    const peers = this.node.getPeers().filter((p) => p.toString() !== except);
    await Promise.allSettled(peers.map((p) => this.#push(p, record)));
  }

  /** A frame channel on a new stream of `protocol` to `peer` (relayed connections too). */
  async #dialChannel(peer: PeerId, protocol: string, signal: AbortSignal): Promise<FrameChannel> {
    const stream = await this.node.dialProtocol(peer, protocol, { signal, runOnLimitedConnection: true });
    return streamFrameChannel(stream, this.limits, undefined, false, PENDING_FRAME_BUDGET, peer.toString());
  }

  async #push(peer: PeerId, record: SignedRecordWire): Promise<void> {
    const t = timeoutSignal(this.#o.requestMs ?? 5000);
    try {
      const ch = await this.#dialChannel(peer, RECORD_PROTOCOL, t.signal);
      await ch.write({ type: "record", record }, { signal: t.signal });
      await ch.close();
    } catch (err) {
      this.#logger.debug("record push failed", { peer: peer.toString(), err });
    } finally {
      t.clear();
    }
  }

  /** Queues probes of unreachable records (a sweep: records that came while the queue was full). */
  #probeSome(): void {
    const prober = this.#prober;
    if (!prober?.hasRoom) return;
    for (const e of this.table.entries()) {
      if (!prober.hasRoom) break;
      if (e.source && e.record.state !== "offline" && !this.table.reachable(e.record.peerId)) {
        prober.want(e.record, e.source);
      }
    }
  }

  /** Offers a record that came over `conn`; probes its peer when it is not reachable yet. */
  async #offerFrom(record: SignedRecordWire, conn: Connection | undefined, from: string) {
    const source = conn ? connectionSource(conn) : "unknown";
    const res = await this.table.offer(record, { from, source });
    if (res.accepted && !res.reachable) this.#prober?.want(res.record, source);
    return res;
  }

  /** Pulls a peer's table into ours and pushes our own record to it; true when the pull answered. */
  async #syncWith(peer: PeerId): Promise<boolean> {
    if (this.#stopping) return false;
    const t = timeoutSignal(this.#o.requestMs ?? 5000);
    let channel: FrameChannel | undefined;
    try {
      const ch = await this.#dialChannel(peer, TABLE_PROTOCOL, t.signal);
      channel = ch;
      await ch.write({ type: "table_request" }, { signal: t.signal });
      const reply = await ch.read({ signal: t.signal });
      await ch.close();
      if (reply?.type !== "table") {
        throw new SwarmError("BAD_FRAME", `table pull answered ${reply === null ? "nothing" : reply.type}`);
      }
      const conn = this.node.getConnections(peer)[0];
      for (const r of reply.records) await this.#offerFrom(r, conn, peer.toString());
      if (this.#ownRecord) await this.#push(peer, this.#ownRecord);
      return true;
    } catch (err) {
      channel?.abort(); // what it received is given back, the stream dropped
      this.#logger.debug("table pull failed", { peer: peer.toString(), err });
      return false;
    } finally {
      t.clear();
    }
  }

  async #serveRecord(ch: FrameChannel, conn: Connection): Promise<void> {
    try {
      const msg = await readFirst(ch, 10_000);
      if (msg === null) return await closeWithin(ch, DEFAULT_WRITE_MS);
      if (msg.type !== "record") throw new SwarmError("BAD_FRAME", `expected record, got ${msg.type}`);
      await closeWithin(ch, DEFAULT_WRITE_MS);
      const from = conn.remotePeer.toString();
      const res = await this.#offerFrom(msg.record, conn, from);
      // passed on only when this node reached the record's peer itself (else after a probe does)
      if (res.accepted && res.reachable) this.#flooder.flood(res.record.peerId, msg.record, from);
    } catch (err) {
      await replyError(ch, toProtocolCode(err), protocolMessage(err));
    }
  }

  #track(p: Promise<unknown>): void {
    this.#inflight.add(p);
    p.finally(() => this.#inflight.delete(p));
  }

  /** Stops libp2p (idempotent). */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    if (this.#pruneTimer) clearInterval(this.#pruneTimer);
    await this.#flooder.stop();
    await this.#prober?.stop();
    await this.#nat?.stop();
    const node = this.#node;
    if (node) await node.stop();
    await Promise.allSettled([...this.#inflight]);
  }
}
