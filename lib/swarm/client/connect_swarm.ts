/**
 * Connects a client to a swarm over libp2p: a non-listening node with an ephemeral identity,
 * the swarm table pulled from the initial peers (and refreshed from them and known servers),
 * protocol clients that dial servers by their announced addresses, and libp2p ping for RTTs.
 * Returns a `SwarmClient` whose `stop()` also stops the node.
 * @module
 */
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { errorMessage, SwarmError } from "../../errors.ts";
import { timeoutSignal } from "../../util/abort.ts";
import { type Logger, silentLogger } from "../../util/logger.ts";
import { streamFrameChannel } from "../frame_channel.ts";
import { createLibp2pNode, parsePeerAddrs, type PlumiseLibp2p } from "../libp2p_node.ts";
import { ephemeralIdentity, type PeerIdentity } from "../peer_identity.ts";
import { ProtocolClient } from "../swarm_client_transport.ts";
import { SwarmTable } from "../swarm_table.ts";
import { ProtocolSpanTransport } from "./protocol_span_transport.ts";
import { SwarmClient, type SwarmClientOptions } from "./swarm_client.ts";
import type { RouteServer, SwarmTableView } from "./types.ts";

export interface ConnectSwarmOptions extends Omit<SwarmClientOptions, "table" | "transport"> {
  /** Bootstrap multiaddrs with `/p2p/<peer id>` (at least one). */
  readonly initialPeers: readonly string[];
  /** Client identity (default: a fresh ephemeral one). */
  readonly identity?: PeerIdentity;
  /** Background table refresh period in ms (default 30 000; 0 = only on demand). */
  readonly tableRefreshMs?: number;
  /** Timeout of connecting + the first table pull (default 15 s). */
  readonly connectTimeoutMs?: number;
  readonly dtype?: "f32" | "f16";
  readonly wallet?: string;
  readonly signal?: AbortSignal;
}

/** The swarm table as the client sees it, refreshed by pulling from peers. */
export class PulledSwarmTable implements SwarmTableView {
  readonly table: SwarmTable;
  readonly #node: PlumiseLibp2p;
  readonly #initial: Multiaddr[];
  readonly #model: string;
  readonly #log: Logger;
  #refreshing: Promise<void> | undefined;

  constructor(node: PlumiseLibp2p, initialPeers: readonly string[], model: string, logger: Logger) {
    this.#node = node;
    this.#initial = parsePeerAddrs(initialPeers);
    this.#model = model;
    this.#log = logger;
    this.table = new SwarmTable({ logger });
  }

  servers(model: string): RouteServer[] {
    return this.table.servers(model);
  }

  /** Pulls from the initial peers and a few known servers; resolves with how many answered. */
  refresh(signal?: AbortSignal): Promise<void> {
    this.#refreshing ??= this.#pull(signal).then(() => {}).finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  /** Peers not to pull from (set by the client: its banned servers). */
  skip: (peerId: string) => boolean = () => false;
  /** The last pull error (for messages). */
  lastError: unknown;

  async #pull(signal?: AbortSignal): Promise<number> {
    const known = this.table.servers(this.#model).filter((r) => !this.skip(r.peerId))
      .sort(() => Math.random() - 0.5).slice(0, 5);
    const targets: Multiaddr[][] = [...this.#initial.map((m) => [m]), ...known.map((r) => dialAddrs(r))];
    let answered = 0;
    await Promise.all(targets.map(async (target) => {
      try {
        const records = await protocolClient(this.#node, target).pullTable(this.#model, signal);
        for (const r of records) await this.table.offer(r);
        answered++;
      } catch (err) {
        this.lastError = err;
        this.#log.debug("table pull failed", { peer: target[0]?.toString(), error: errorMessage(err) });
      }
    }));
    return answered;
  }

  /** First pull: fails when no initial peer answers. */
  async initialPull(signal?: AbortSignal): Promise<void> {
    const answered = await this.#pull(signal);
    if (answered === 0) {
      throw new SwarmError(
        "NO_PEERS",
        `none of the ${this.#initial.length} initial peers answered a table request ` +
          `(${this.#initial.map((m) => m.toString()).join(", ")}): ${errorMessage(this.lastError)}`,
        {
          hint: "check --initial-peers (PETALS_INITIAL_PEERS) and that those servers are running",
          cause: this.lastError,
        },
      );
    }
  }
}

/** The multiaddrs of a record, each ending in /p2p/<peer id>. */
export function dialAddrs(r: { peerId: string; addrs?: readonly string[] }): Multiaddr[] {
  return (r.addrs ?? []).map((a) => multiaddr(a.includes("/p2p/") ? a : `${a}/p2p/${r.peerId}`));
}

function protocolClient(node: PlumiseLibp2p, target: Multiaddr[]): ProtocolClient {
  return new ProtocolClient(async (protocol, signal) => {
    const stream = await node.dialProtocol(target.length === 1 ? target[0] : target, protocol, { signal });
    return streamFrameChannel(stream);
  });
}

/** A `SwarmClient` that owns its libp2p node and table refresher. */
export class ConnectedSwarmClient extends SwarmClient {
  readonly node: PlumiseLibp2p;
  readonly swarmTable: PulledSwarmTable;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(
    options: SwarmClientOptions & { node: PlumiseLibp2p; swarmTable: PulledSwarmTable; refreshMs: number },
  ) {
    super(options);
    this.node = options.node;
    this.swarmTable = options.swarmTable;
    if (options.refreshMs > 0) {
      this.#timer = setInterval(() => this.swarmTable.refresh().catch(() => {}), options.refreshMs);
      Deno.unrefTimer(this.#timer);
    }
  }

  override async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    await super.stop();
    await Promise.resolve(this.node.stop()).catch(() => {});
  }
}

/** Connects to the swarm and returns a started client (pings measured). */
export async function connectSwarm(options: ConnectSwarmOptions): Promise<ConnectedSwarmClient> {
  const log = options.logger ?? silentLogger;
  if (options.initialPeers.length === 0) {
    throw new SwarmError("NO_INITIAL_PEERS", "no initial peers given: cannot find the swarm", {
      hint: "pass --initial-peers /ip4/…/tcp/…/p2p/12D3KooW… (or set PETALS_INITIAL_PEERS)",
    });
  }
  const identity = options.identity ?? await ephemeralIdentity();
  const node = await createLibp2pNode({
    privateKey: identity.privateKey,
    noListen: true,
    dht: false,
    initialPeers: options.initialPeers,
  });
  await node.start();
  const t = timeoutSignal(options.connectTimeoutMs ?? 15_000, options.signal);
  try {
    const swarmTable = new PulledSwarmTable(node, options.initialPeers, options.model, log);
    await swarmTable.initialPull(t.signal);
    const transport = new ProtocolSpanTransport({
      clientFor: (server) => protocolClient(node, dialAddrs(server)),
      ping: (server, signal) =>
        (node.services as { ping: { ping(t: Multiaddr[], o?: { signal?: AbortSignal }): Promise<number> } })
          .ping
          .ping(dialAddrs(server), { signal }),
      dtype: options.dtype,
      wallet: options.wallet,
    });
    const client = new ConnectedSwarmClient({
      ...options,
      table: swarmTable,
      transport,
      node,
      swarmTable,
      refreshMs: options.tableRefreshMs ?? 30_000,
    });
    swarmTable.skip = (p) => client.bans.isBanned(p);
    await client.start(t.signal);
    log.debug("connected to the swarm", {
      servers: swarmTable.servers(options.model).length,
      peer: identity.peerId,
    });
    return client;
  } catch (err) {
    await Promise.resolve(node.stop()).catch(() => {});
    throw err;
  } finally {
    t.clear();
  }
}
