/**
 * `RecordProber`: makes the peers of relayed records reachable, or not, by dialing them once.
 * A record relayed by a third peer proves only that its key signed it (keys are free); this node
 * passes on only records of peers it reached itself (swarm_table.ts), so a server that no node
 * in the path had contact with would stay unknown beyond its first hop. The prober dials such a
 * peer at its announced addresses (the libp2p handshake proves its key); on success the table
 * counts it as reachable and it is passed on. Bounded: `concurrency` dials at once, `maxWaiting`
 * queued, one try per peer per `retryMs`, and only addresses no more internal than the source
 * that relayed the record (the rule of `link_to`, lib/wire/link_target.ts), IP addresses only
 * (a DNS name could resolve anywhere): a record cannot make this node dial its own loopback or
 * private network for a stranger. See docs/security.md.
 * @module
 */
import { multiaddr } from "@multiformats/multiaddr";
import type { SwarmRecord } from "../wire/mod.ts";
import { addressScope } from "../wire/mod.ts";
import { timeoutSignal } from "../util/abort.ts";

const RANK = { none: -1, loopback: 0, private: 1, public: 2 } as const;

/**
 * The addresses of `addrs` that may be dialed for a record relayed from `source` (a source key,
 * `addressGroup`: an IPv4 address or `<IPv6 prefix>/64`): IP addresses (the first component, or
 * a relay's) no more internal than the source; none for names or unparseable text.
 */
export function probeAddrs(addrs: readonly string[], source: string): string[] {
  const from = addressScope(source.replace(/\/64$/, "")) ?? "public";
  return addrs.filter((a) => {
    try {
      const first = multiaddr(a).getComponents()[0];
      if (!first || (first.name !== "ip4" && first.name !== "ip6") || !first.value) return false;
      const scope = addressScope(first.value);
      return scope !== undefined && scope !== "none" && RANK[scope] >= RANK[from];
    } catch {
      return false;
    }
  });
}

export interface RecordProberOptions {
  /** Connects to `peerId` at `addrs` (the handshake proves its key); rejects when it cannot. */
  dial: (peerId: string, addrs: string[], options: { signal: AbortSignal }) => Promise<void>;
  /** Told of each probe's outcome. */
  onResult?: (peerId: string, ok: boolean) => void;
  /** Dials at once (default 2). */
  concurrency?: number;
  /** Timeout of one dial (default 5 s). */
  timeoutMs?: number;
  /** Most peers waiting for a probe (default 256); more are not queued (a later sweep may). */
  maxWaiting?: number;
  /** A peer probed once is not probed again for this long (default 5 min). */
  retryMs?: number;
  now?: () => number;
}

export class RecordProber {
  readonly #o: RecordProberOptions;
  readonly #now: () => number;
  readonly #waiting = new Map<string, string[]>();
  readonly #active = new Set<string>();
  /** When each peer was last probed (bounded: oldest dropped beyond 4 × maxWaiting + concurrency). */
  readonly #tried = new Map<string, number>();
  readonly #running = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  readonly stats = { ok: 0, failed: 0, unroutable: 0 };

  constructor(options: RecordProberOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Whether `peerId` is being dialed by a probe now. */
  probing(peerId: string): boolean {
    return this.#active.has(peerId);
  }

  /** Peers waiting for a probe. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** Whether the queue has room for more. */
  get hasRoom(): boolean {
    return this.#waiting.size < (this.#o.maxWaiting ?? 256);
  }

  /**
   * Queues a probe of `record`'s peer, relayed from `source`; no-op when already queued, being
   * probed, tried within `retryMs`, or the queue is full. False when it was not queued.
   */
  want(record: SwarmRecord, source: string): boolean {
    const id = record.peerId;
    if (this.#stop.signal.aborted || this.#waiting.has(id) || this.#active.has(id) || !this.hasRoom) {
      return false;
    }
    const tried = this.#tried.get(id);
    if (tried !== undefined && this.#now() - tried < (this.#o.retryMs ?? 300_000)) return false;
    const addrs = probeAddrs(record.addrs, source);
    this.#remember(id);
    if (!addrs.length) {
      this.stats.unroutable++;
      this.#o.onResult?.(id, false);
      return false;
    }
    this.#waiting.set(id, addrs);
    this.#next();
    return true;
  }

  #remember(id: string): void {
    this.#tried.delete(id);
    this.#tried.set(id, this.#now());
    const max = 4 * (this.#o.maxWaiting ?? 256) + (this.#o.concurrency ?? 2);
    while (this.#tried.size > max) this.#tried.delete(this.#tried.keys().next().value!);
  }

  #next(): void {
    while (this.#active.size < (this.#o.concurrency ?? 2) && this.#waiting.size) {
      const [id, addrs] = this.#waiting.entries().next().value!;
      this.#waiting.delete(id);
      this.#active.add(id);
      const run = this.#probe(id, addrs).finally(() => {
        this.#active.delete(id);
        this.#running.delete(run);
        if (!this.#stop.signal.aborted) this.#next();
      });
      this.#running.add(run);
    }
  }

  async #probe(id: string, addrs: string[]): Promise<void> {
    const t = timeoutSignal(this.#o.timeoutMs ?? 5_000, this.#stop.signal);
    let ok = false;
    try {
      await this.#o.dial(id, addrs, { signal: t.signal });
      ok = true;
    } catch {
      // unreachable (or stopped)
    } finally {
      t.clear();
    }
    if (this.#stop.signal.aborted) return;
    if (ok) this.stats.ok++;
    else this.stats.failed++;
    this.#o.onResult?.(id, ok);
  }

  /** Drops the queue, aborts the dials in progress and waits for them. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#waiting.clear();
    await Promise.allSettled([...this.#running]);
  }
}
