/**
 * `ReachabilityMonitor`: keeps this node's reachability current (reachability.ts decides, the
 * peers' dial-backs (dial_back.ts) are the evidence). It asks a few connected peers soon after
 * they connect, again every 10 minutes once decided (every 30 s while unknown), and at once when
 * a peer sees this node at a new address (the network changed: a new public IP); listeners hear
 * every change of the decision.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { errorMessage } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import type { ReachMessage } from "../wire/mod.ts";
import {
  decideReachability,
  type NatScope,
  onInternet,
  type ReachabilityStatus,
  type ReachVerdict,
  UNKNOWN_REACHABILITY,
} from "./reachability.ts";

/** What the monitor needs of the swarm peer. */
export interface ReachabilityProbe {
  /** Peers connected directly (not through a relay), with the host they were reached at. */
  candidates(): Array<{ readonly peerId: string; readonly host: string }>;
  /** Asks `peerId` how it sees this node (and to dial back `port`). */
  ask(peerId: string, port: number | undefined, options?: AbortOptions): Promise<ReachMessage>;
  /** The TCP port this node listens on (undefined: it does not listen). */
  listenPort(): number | undefined;
}

export interface ReachabilityMonitorOptions {
  readonly probe: ReachabilityProbe;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Re-check period once decided (default 10 min). */
  readonly intervalMs?: number;
  /** Re-check period while unknown (default 30 s). */
  readonly retryMs?: number;
  /** Peers asked per check (default 3). */
  readonly askAtOnce?: number;
  /** Wait after a peer connects before checking (default 300 ms: lets a burst of connections settle). */
  readonly settleMs?: number;
  /** What counts as the internet (NAT_SCOPE; default public). */
  readonly scope?: NatScope;
}

export type ReachabilityListener = (status: ReachabilityStatus, previous: ReachabilityStatus) => void;

export class ReachabilityMonitor {
  readonly #o: ReachabilityMonitorOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  #verdicts: ReachVerdict[] = [];
  #status: ReachabilityStatus = UNKNOWN_REACHABILITY;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #checking: Promise<ReachabilityStatus> | undefined;
  #started = false;
  #stopped = false;
  readonly #listeners = new Set<ReachabilityListener>();
  readonly #asked = new Map<string, number>();
  readonly #stop = new AbortController();

  constructor(options: ReachabilityMonitorOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#now = options.now ?? Date.now;
  }

  get status(): ReachabilityStatus {
    return this.#status;
  }

  /** Calls `fn` on every change of the decision; returns a function that removes it. */
  onChange(fn: ReachabilityListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#schedule(this.#o.settleMs ?? 300);
  }

  /** A peer connected: check soon while undecided. */
  peerConnected(): void {
    if (!this.#started || this.#stopped || this.#checking) return;
    if (this.#status.status === "unknown") this.#schedule(this.#o.settleMs ?? 300);
  }

  /** Asks up to `askAtOnce` connected peers now and decides again; resolves with the new status. */
  check(): Promise<ReachabilityStatus> {
    this.#checking ??= this.#check().finally(() => {
      this.#checking = undefined;
      if (!this.#stopped) {
        this.#schedule(
          this.#status.status === "unknown" ? this.#o.retryMs ?? 30_000 : this.#o.intervalMs ?? 600_000,
        );
      }
    });
    return this.#checking;
  }

  async #check(): Promise<ReachabilityStatus> {
    const port = this.#o.probe.listenPort();
    const now = this.#now();
    // peers on the internet only (a peer on this machine or network sees a local address, which
    // says nothing about the internet); least recently asked first, one per host
    const byHost = new Map<string, string>();
    for (const c of this.#o.probe.candidates()) {
      if (onInternet(c.host, this.#o.scope) && !byHost.has(c.host)) byHost.set(c.host, c.peerId);
    }
    const peers = [...byHost.entries()]
      .sort((a, b) => (this.#asked.get(a[1]) ?? 0) - (this.#asked.get(b[1]) ?? 0) || Math.random() - 0.5)
      .slice(0, this.#o.askAtOnce ?? 3);
    await Promise.all(peers.map(async ([verifierHost, peerId]) => {
      this.#asked.set(peerId, now);
      if (this.#asked.size > 1024) this.#asked.delete(this.#asked.keys().next().value!);
      try {
        const reply = await this.#o.probe.ask(peerId, port, { signal: this.#stop.signal });
        if (reply.host === undefined) return;
        this.#observe(reply.host);
        if (port === undefined || reply.dialed === undefined) return;
        this.#verdicts.push({
          verifier: peerId,
          verifierHost,
          observedHost: reply.host,
          dialed: reply.dialed,
          at: this.#now(),
        });
        if (!reply.dialed) this.#log.debug("dial-back failed", { peer: peerId, reason: reply.reason });
      } catch (err) {
        this.#log.debug("reachability check failed", { peer: peerId, err: errorMessage(err) });
      }
    }));
    if (this.#verdicts.length > 64) this.#verdicts = this.#verdicts.slice(-64);
    this.#decide();
    return this.#status;
  }

  /** A peer saw this node at `host`: a new public address means the network changed. */
  #observe(host: string): void {
    const known = this.#status.observedHost;
    if (known === undefined || host === known || !onInternet(host, this.#o.scope)) return;
    this.#log.info("this node's address as peers see it changed; checking reachability again", {
      from: known,
      to: host,
    });
    this.#verdicts = this.#verdicts.filter((v) => v.observedHost === host);
  }

  #decide(): void {
    const next = decideReachability(this.#verdicts, this.#now(), { scope: this.#o.scope });
    const prev = this.#status;
    this.#status = next;
    if (next.status === prev.status && next.observedHost === prev.observedHost) return;
    this.#log.info("reachability", {
      status: next.status,
      observedHost: next.observedHost,
      reason: next.reason,
    });
    for (const fn of this.#listeners) {
      try {
        fn(next, prev);
      } catch (err) {
        this.#log.warn("reachability listener failed", { err });
      }
    }
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.check();
    }, ms);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#stop.abort();
    await this.#checking?.catch(() => {});
  }
}
