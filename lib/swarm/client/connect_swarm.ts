/**
 * Connects a client to a swarm over libp2p: a non-listening `SwarmPeer` with an ephemeral identity,
 * the swarm table pulled from the initial peers (and refreshed from them and known servers),
 * protocol clients that dial servers by their announced addresses, and libp2p ping for RTTs.
 * Returns a `SwarmClient` whose `stop()` also stops the node.
 * @module
 */
import { errorMessage, SwarmError } from "../../errors.ts";
import { type AbortOptions, raceAbort, sleep, timeoutSignal } from "../../util/abort.ts";
import { Backoff } from "../../util/backoff.ts";
import { type Logger, silentLogger } from "../../util/logger.ts";
import { ephemeralIdentity, type PeerIdentity } from "../peer_identity.ts";
import type { ProtocolClient } from "../swarm_client_transport.ts";
import { dialAddrs, SwarmPeer } from "../swarm_peer.ts";
import type { SwarmTable } from "../swarm_table.ts";
import type { NatScope } from "../reachability.ts";
import { ProtocolSpanTransport, type RemoteStepTiming } from "./protocol_span_transport.ts";
import { SwarmClient, type SwarmClientOptions } from "./swarm_client.ts";
import type { RouteServer, SpanTransport, SwarmTableView } from "./types.ts";

export interface ConnectSwarmOptions extends Omit<SwarmClientOptions, "table" | "transport"> {
  /** Bootstrap multiaddrs with `/p2p/<peer id>` (at least one). */
  readonly initialPeers: readonly string[];
  /** Client identity (default: a fresh ephemeral one). */
  readonly identity?: PeerIdentity;
  /** Background table refresh period in ms (default 30 000; 0 = only on demand). */
  readonly tableRefreshMs?: number;
  /**
   * Timeout of connecting + the first table pull (default 15 s); pulls that get no record are
   * repeated with backoff (0.25 s, doubling, at most 2 s apart) until then.
   */
  readonly connectTimeoutMs?: number;
  readonly dtype?: "f32" | "f16";
  readonly wallet?: string;
  /** Take the direct paths servers offer for inference steps (default true; see lib/wire/direct_channel.ts). */
  readonly direct?: boolean;
  /** Punch holes to servers reached through relays (HOLE_PUNCH; default true; see lib/swarm/punch_session.ts). */
  readonly holePunch?: boolean;
  /** NAT_SCOPE: which addresses count as the internet (default public; see lib/swarm/reachability.ts). */
  readonly natScope?: NatScope;
  /**
   * Let the steps' frames go unsealed on direct paths and server links whose two ends are
   * loopback addresses (default true; see lib/wire/direct_channel.ts).
   */
  readonly plainLoopback?: boolean;
  /**
   * Told of every remote step the client waits for (server compute vs round trip; of a push, the
   * server that replied, over the whole push), e.g. for metrics or benchmarks.
   */
  readonly onRemoteStep?: (event: RemoteStepTiming) => void;
  /** Decorates the client's span transport (instrumentation, or simulated network conditions in benchmarks). */
  readonly wrapTransport?: (transport: SpanTransport) => SpanTransport;
  readonly signal?: AbortSignal;
}

/** The longest a table pull may take (its peers' exchanges have their own, shorter timeouts). */
const PULL_TIMEOUT_MS = 15_000;

/** The swarm table as the client sees it (kept by a `SwarmPeer`), refreshed by pulling from peers. */
export class PulledSwarmTable implements SwarmTableView {
  readonly table: SwarmTable;
  readonly #clientFor: (target: string) => ProtocolClient;
  readonly #initial: readonly string[];
  readonly #model: string;
  readonly #log: Logger;
  #refreshing: Promise<number> | undefined;
  /** Peers not to pull from (set by the client: its banned servers). */
  skip: (peerId: string) => boolean = () => false;
  /**
   * The last error of the last pull that had one not caused by its own abort (for messages);
   * cleared by a pull without errors.
   */
  lastError: unknown;

  constructor(
    table: SwarmTable,
    clientFor: (target: string) => ProtocolClient,
    initialPeers: readonly string[],
    model: string,
    logger: Logger,
  ) {
    this.table = table;
    this.#clientFor = clientFor;
    this.#initial = initialPeers;
    this.#model = model;
    this.#log = logger;
  }

  servers(model: string): RouteServer[] {
    return this.table.servers(model);
  }

  /**
   * Pulls from the initial peers and up to 5 random known, unbanned servers; how many answered.
   * One pull at a time, shared by every caller and bounded by a deadline of its own: a caller that
   * gives up (its `signal`: a session whose client went away) stops waiting, and the pull goes on
   * for the others (before, the first caller's abort ended it for all of them).
   */
  refresh({ signal }: AbortOptions = {}): Promise<number> {
    if (!this.#refreshing) {
      const t = timeoutSignal(PULL_TIMEOUT_MS);
      this.#refreshing = this.#pull({ signal: t.signal }).finally(() => {
        t.clear();
        this.#refreshing = undefined;
      });
    }
    return signal ? raceAbort(this.#refreshing, { signal }) : this.#refreshing;
  }

  async #pull({ signal }: AbortOptions = {}): Promise<number> {
    const known = this.table.servers(this.#model).filter((r) => !this.skip(r.peerId))
      .sort(() => Math.random() - 0.5).slice(0, 5).map((r) => r.peerId);
    let answered = 0, failed = 0;
    let error: unknown;
    await Promise.all([...this.#initial, ...known].map(async (target) => {
      try {
        const records = await this.#clientFor(target).pullTable(this.#model, { signal });
        for (const r of records) await this.table.offer(r);
        answered++;
      } catch (err) {
        failed++;
        // an error caused by the pull's own abort (a timeout) would hide the real one
        if (!signal?.aborted) error = err;
        this.#log.debug("table pull failed", { peer: target, error: errorMessage(err) });
      }
    }));
    if (error !== undefined) this.lastError = error;
    else if (failed === 0) this.lastError = undefined;
    return answered;
  }
}

export { dialAddrs };

/** A `SwarmClient` that owns its libp2p node and table refresher. */
export class ConnectedSwarmClient extends SwarmClient {
  readonly peer: SwarmPeer;
  readonly swarmTable: PulledSwarmTable;
  #timer: ReturnType<typeof setInterval> | undefined;
  #stopped = false;

  constructor(
    options: SwarmClientOptions & { peer: SwarmPeer; swarmTable: PulledSwarmTable; refreshMs: number },
  ) {
    super(options);
    this.peer = options.peer;
    this.swarmTable = options.swarmTable;
    if (options.refreshMs > 0) {
      this.#timer = setInterval(
        () => this.swarmTable.refresh().then(() => this.measurePings()).catch(() => {}),
        options.refreshMs,
      );
      Deno.unrefTimer(this.#timer);
    }
  }

  override async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    await super.stop();
    await this.peer.stop().catch(() => {});
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
  const peer = new SwarmPeer({
    privateKey: identity.privateKey,
    noListen: true,
    dht: false,
    initialPeers: options.initialPeers,
    logger: log,
    direct: options.direct,
    plainLoopback: options.plainLoopback,
    nat: { holePunch: options.holePunch, scope: options.natScope },
  });
  const t = timeoutSignal(options.connectTimeoutMs ?? 15_000, options.signal);
  try {
    await peer.start({ signal: t.signal });
    const swarmTable = new PulledSwarmTable(
      peer.table,
      (x) => peer.client(x),
      options.initialPeers,
      options.model,
      log,
    );
    // A pull without a record is often a passing state: a server still starting (refusing
    // connections, or answering before its own record is in its table), or a limit on new
    // connections per host (several clients behind one address connecting at once). So the pull
    // is repeated, with backoff, until a record of the model comes or the connect timeout; or
    // until peers answer with records of other models only (the swarm is there, the model is not:
    // routing then says which blocks are missing).
    const backoff = new Backoff({ initialMs: 250, maxMs: 2_000 });
    const t0 = performance.now();
    let pulls = 0, answered = 0;
    while (swarmTable.servers(options.model).length === 0) {
      pulls++;
      // at the connect timeout the wait ends (the pull's own deadline ends the pull): NO_PEERS below
      answered = await swarmTable.refresh({ signal: t.signal }).catch(() => 0);
      if (swarmTable.servers(options.model).length > 0 || t.signal.aborted) break;
      if (answered > 0 && peer.table.size > 0) break;
      const ok = await sleep(backoff.next(), { signal: t.signal }).then(() => true, () => false);
      if (!ok) break;
    }
    options.signal?.throwIfAborted();
    // this client's public address, for hole punches to servers behind NAT (asked once, kept)
    if (options.holePunch !== false) void peer.nat.observedHost().catch(() => {});
    if (peer.table.size === 0) {
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      const why = swarmTable.lastError
        ? `: ${errorMessage(swarmTable.lastError)}`
        : answered > 0
        ? `: ${answered} answered with no record of ${options.model}`
        : "";
      throw new SwarmError(
        "NO_PEERS",
        `no server record came from the ${options.initialPeers.length} initial peer(s) ` +
          `(${options.initialPeers.join(", ")}) in ${pulls} pull(s) over ${s} s${why}`,
        {
          hint: answered > 0 && !swarmTable.lastError
            ? `the peers are up but know no server of ${options.model} yet: start one (plumise serve --model …), or check --model`
            : "check --initial-peers (PETALS_INITIAL_PEERS) and that those servers are running",
          cause: swarmTable.lastError,
        },
      );
    }
    const transport = new ProtocolSpanTransport({
      clientFor: (server) => peer.client(server.peerId),
      ping: (server, options) => peer.ping(server, options),
      dtype: options.dtype,
      wallet: options.wallet,
      onStep: options.onRemoteStep,
    });
    const client = new ConnectedSwarmClient({
      ...options,
      table: swarmTable,
      transport: options.wrapTransport ? options.wrapTransport(transport) : transport,
      peer,
      swarmTable,
      refreshMs: options.tableRefreshMs ?? 30_000,
    });
    swarmTable.skip = (p) => client.bans.isBanned(p);
    await client.start({ signal: t.signal });
    log.debug("connected to the swarm", {
      servers: swarmTable.servers(options.model).length,
      peer: identity.peerId,
    });
    return client;
  } catch (err) {
    await peer.stop().catch(() => {});
    throw err;
  } finally {
    t.clear();
  }
}
