/**
 * The swarm table: the verified records this node knows, newest `seq` per peer, expired ones
 * dropped. Queries: servers of a model, per-block coverage, spans.
 *
 * Open to the internet, the table also bounds what strangers can make it hold and pass on
 * (docs/protocol.md, "Records"). Every record is signed by its own peer, but keys are free, so
 * anyone can make any number of valid records. Therefore:
 *   - each record carries its provenance: given locally (own record, tests), delivered by the peer
 *     it describes, or relayed by another peer from some source address;
 *   - a peer is *reachable* once this node had a libp2p connection with it (which proves its key:
 *     `touch`), or once it delivered its own record; a record given locally counts as reachable;
 *   - relayed records of peers the table does not know yet spend their source's budget
 *     (`newPerSourceBurst`, refilled at `newPerSourcePerMinute`); records delivered by their own
 *     peer, or given locally, do not;
 *   - a full table evicts to admit a record only when the record ranks higher than the lowest
 *     entry (reachable above unreachable above a failed probe, then online above joining above
 *     offline), or as high while its source holds fewer entries than the entry's source; so a
 *     flood never pushes out the servers this node has seen, nor other sources' records;
 *   - table replies (`signedRecords` with `reachableOnly`) carry only reachable peers' records,
 *     online and newest first, as many as fit a byte budget: a flood of strangers' records is
 *     never passed on, and a reply always fits a frame.
 * A stale record (seq not newer) is refused before its signature is checked.
 * @module
 */
import type { SignedRecordWire, SwarmRecord } from "../wire/mod.ts";
import { MAX_TABLE_RECORDS, parseRecordPayload } from "../wire/mod.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { PlumiseError } from "../errors.ts";
import { verifySignedRecord } from "./record_signer.ts";
import { RateBudget } from "./rate_budget.ts";

export interface SwarmTableOptions {
  now?: () => number;
  logger?: Logger;
  /** Records further in the future than this are refused (default 1 h). */
  maxTtlMs?: number;
  /** Most peers kept (default 10 000). */
  maxRecords?: number;
  /** New peers one source may add at once (default `NEW_PER_SOURCE_BURST`). */
  newPerSourceBurst?: number;
  /** New peers one source may add per minute after that (default `NEW_PER_SOURCE_PER_MINUTE`). */
  newPerSourcePerMinute?: number;
}

/** Default of the new peers one source may add at once (a bootstrap's table pull, a few hundred servers). */
export const NEW_PER_SOURCE_BURST = 512;
/** Default refill of that budget per minute. */
export const NEW_PER_SOURCE_PER_MINUTE = 240;

/**
 * Where a record came from. Absent: given locally (this node's own record, a tool, a test).
 * `from` is the peer id of the libp2p connection that delivered it, `source` the key of that
 * connection's address (`addressGroup`: an IPv4 address or an IPv6 /64).
 */
export interface Provenance {
  readonly from: string;
  readonly source: string;
}

export type OfferResult =
  | { accepted: true; record: SwarmRecord; previous?: SwarmRecord; reachable: boolean }
  | { accepted: false; reason: string; code: string };

export interface TableEntry {
  readonly record: SwarmRecord;
  readonly signed: SignedRecordWire;
  /** Unix ms when this node first saw the peer. */
  readonly firstSeen: number;
  /** Bytes the signed record takes in a table reply. */
  readonly wireBytes: number;
  /** Given locally, or delivered by its own peer (see also `SwarmTable.reachable`). */
  readonly local: boolean;
  /** The source key of the connection that delivered the newest record (absent: given locally). */
  readonly source?: string;
}

export type TableListener = (
  event: { type: "upsert" | "remove" | "reachable"; record: SwarmRecord },
) => void;

/** A server's span for routing and display. */
export interface ServerSpan {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  readonly state: SwarmRecord["state"];
  readonly throughput: number;
}

export interface SignedRecordsOptions {
  /** Only records of reachable peers (what a table reply passes on). */
  reachableOnly?: boolean;
  /** Most bytes of signed records (as JSON) in the answer. */
  maxBytes?: number;
}

const STATE_RANK: Record<SwarmRecord["state"], number> = { online: 2, joining: 1, offline: 0 };
const encoder = new TextEncoder();

export class SwarmTable {
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #maxTtl: number;
  readonly #max: number;
  readonly #entries = new Map<string, TableEntry>();
  /** Peers this node had a connection with, and when (bounded: 2 × maxRecords, oldest dropped). */
  readonly #contacts = new Map<string, number>();
  /** Peers a probe could not reach, and when (bounded like #contacts). */
  readonly #failed = new Map<string, number>();
  readonly #budget: RateBudget;
  readonly #listeners = new Set<TableListener>();
  /** Counts of rejections by code (tests and metrics). */
  readonly rejected: Map<string, number> = new Map();
  /** Entries evicted to make room. */
  evicted = 0;

  constructor(options: SwarmTableOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger ?? silentLogger;
    this.#maxTtl = options.maxTtlMs ?? 3_600_000;
    this.#max = options.maxRecords ?? 10_000;
    this.#budget = new RateBudget({
      burst: options.newPerSourceBurst ?? NEW_PER_SOURCE_BURST,
      perMinute: options.newPerSourcePerMinute ?? NEW_PER_SOURCE_PER_MINUTE,
      now: this.#now,
    });
  }

  /**
   * Verifies and stores a signed record if it is newer than what we have; `from` says how it
   * came (absent: given locally).
   */
  async offer(signed: SignedRecordWire, from?: Provenance): Promise<OfferResult> {
    const now = this.#now();
    // stale or over budget: refused before the signature is checked (the costly part)
    let claimed: SwarmRecord | undefined;
    try {
      claimed = parseRecordPayload(signed.payload);
    } catch {
      // verifySignedRecord reports it
    }
    const prev = claimed && this.#entries.get(claimed.peerId);
    if (claimed && prev && claimed.seq <= prev.record.seq) {
      return this.#reject(
        "RECORD_STALE",
        `record of ${claimed.peerId} has seq ${claimed.seq} ≤ known ${prev.record.seq}`,
      );
    }
    const own = from !== undefined && claimed !== undefined && from.from === claimed.peerId;
    if (from && !own && !prev && !this.#budget.take(from.source)) {
      return this.#reject(
        "RECORD_RATE",
        `source ${from.source} (peer ${from.from}) added its most new peers for now`,
      );
    }
    let record: SwarmRecord;
    try {
      record = await verifySignedRecord(signed, now);
    } catch (err) {
      const code = err instanceof PlumiseError ? err.code : "RECORD_INVALID";
      return this.#reject(code, (err as Error).message);
    }
    if (record.expiresAt > now + this.#maxTtl) {
      return this.#reject(
        "RECORD_TTL_TOO_LONG",
        `record of ${record.peerId} expires too far ahead (${record.expiresAt})`,
      );
    }
    // (re-read: another offer of the same peer may have completed while this one verified)
    const before = this.#entries.get(record.peerId);
    if (before && record.seq <= before.record.seq) {
      return this.#reject(
        "RECORD_STALE",
        `record of ${record.peerId} has seq ${record.seq} ≤ known ${before.record.seq}`,
      );
    }
    const local = from === undefined || from.from === record.peerId || (before?.local ?? false);
    // (checked after the await above, and nothing awaits from here to the insertion: concurrent
    // offers cannot overfill the table)
    if (!before && this.#entries.size >= this.#max && !this.#makeRoom(record, local, from?.source)) {
      return this.#reject("TABLE_FULL", `swarm table holds ${this.#max} peers, none below this one`);
    }
    const wireBytes = encoder.encode(JSON.stringify(signed)).byteLength;
    this.#entries.set(record.peerId, {
      record,
      signed,
      firstSeen: before?.firstSeen ?? now,
      wireBytes,
      local,
      ...(from ? { source: from.source } : {}),
    });
    if (from?.from === record.peerId) this.touch(record.peerId);
    this.#emit({ type: "upsert", record });
    const reachable = this.reachable(record.peerId);
    return before
      ? { accepted: true, record, previous: before.record, reachable }
      : { accepted: true, record, reachable };
  }

  /**
   * Notes a libp2p connection with `peerId` (its key proven by the handshake): its record, now
   * or later, is reachable. Emits `reachable` when a known record becomes so.
   */
  touch(peerId: string): void {
    const was = this.reachable(peerId);
    this.#contacts.delete(peerId);
    this.#contacts.set(peerId, this.#now());
    this.#failed.delete(peerId);
    while (this.#contacts.size > 2 * this.#max) this.#contacts.delete(this.#contacts.keys().next().value!);
    const e = this.#entries.get(peerId);
    if (e && !was && e.record.expiresAt > this.#now()) this.#emit({ type: "reachable", record: e.record });
  }

  /** Whether this node saw `peerId` itself (a connection, its own record delivered, or given locally). */
  reachable(peerId: string): boolean {
    return this.#contacts.has(peerId) || (this.#entries.get(peerId)?.local ?? false);
  }

  /**
   * Notes that a probe of `peerId` failed (record_prober.ts): until it is reachable, its record
   * ranks below every other, so it is the first to go when the table is full.
   */
  unreachable(peerId: string): void {
    this.#failed.delete(peerId);
    this.#failed.set(peerId, this.#now());
    while (this.#failed.size > 2 * this.#max) this.#failed.delete(this.#failed.keys().next().value!);
  }

  /** How much a record is worth keeping: reachable first, failed probes last, then by state. */
  #rank(peerId: string, state: SwarmRecord["state"], reachable: boolean): number {
    return (reachable ? 10 : this.#failed.has(peerId) ? -10 : 0) + STATE_RANK[state];
  }

  /**
   * Frees one slot for `record` (prune expired first): the lowest-ranked entry goes if it ranks
   * below `record`; among equals, one of the source that holds the most entries, and only if
   * `record`'s source holds fewer (so that under a flood each source keeps a fair share and a
   * flooding source only replaces its own records). False when nothing can go.
   */
  #makeRoom(record: SwarmRecord, local: boolean, source: string | undefined): boolean {
    this.prune();
    if (this.#entries.size < this.#max) return true;
    const rank = this.#rank(record.peerId, record.state, local || this.#contacts.has(record.peerId));
    const held = new Map<string, number>();
    for (const e of this.#entries.values()) {
      if (e.source !== undefined) held.set(e.source, (held.get(e.source) ?? 0) + 1);
    }
    let victim: TableEntry | undefined, victimRank = Infinity, victimHeld = -1;
    for (const e of this.#entries.values()) {
      const r = this.#rank(e.record.peerId, e.record.state, this.reachable(e.record.peerId));
      const h = e.source === undefined ? 0 : held.get(e.source)!;
      if (r < victimRank || (r === victimRank && h > victimHeld)) {
        [victim, victimRank, victimHeld] = [e, r, h];
      }
    }
    if (!victim || victimRank > rank) return false;
    if (victimRank === rank && (source === undefined ? 0 : held.get(source) ?? 0) + 1 >= victimHeld) {
      return false;
    }
    this.#entries.delete(victim.record.peerId);
    this.evicted++;
    this.#emit({ type: "remove", record: victim.record });
    return true;
  }

  #reject(code: string, reason: string): OfferResult {
    this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
    this.#logger.debug("record rejected", { code, reason });
    return { accepted: false, code, reason };
  }

  /** Drops expired records; returns them. */
  prune(): SwarmRecord[] {
    const now = this.#now();
    const removed: SwarmRecord[] = [];
    for (const [id, e] of this.#entries) {
      if (e.record.expiresAt <= now) {
        this.#entries.delete(id);
        removed.push(e.record);
        this.#emit({ type: "remove", record: e.record });
      }
    }
    return removed;
  }

  /** The entry of a peer (even offline), if known and not expired. */
  get(peerId: string): TableEntry | undefined {
    const e = this.#entries.get(peerId);
    return e && e.record.expiresAt > this.#now() ? e : undefined;
  }

  /** Every live entry (optionally of one model), offline ones included. */
  entries(model?: string): TableEntry[] {
    const now = this.#now();
    return [...this.#entries.values()]
      .filter((e) => e.record.expiresAt > now && (model === undefined || e.record.model === model))
      .sort((a, b) => a.record.peerId < b.record.peerId ? -1 : a.record.peerId > b.record.peerId ? 1 : 0);
  }

  /**
   * Signed records to hand out in a table pull: online first, then joining, then offline, the
   * newest first among equals; at most MAX_TABLE_RECORDS and `maxBytes`.
   */
  signedRecords(model?: string, options: SignedRecordsOptions = {}): SignedRecordWire[] {
    const candidates = this.entries(model)
      .filter((e) => !options.reachableOnly || this.reachable(e.record.peerId))
      .sort((a, b) => STATE_RANK[b.record.state] - STATE_RANK[a.record.state] || b.record.seq - a.record.seq);
    const out: SignedRecordWire[] = [];
    let bytes = 0;
    const max = options.maxBytes ?? Infinity;
    for (const e of candidates) {
      if (out.length >= MAX_TABLE_RECORDS) break;
      if (bytes + e.wireBytes + 1 > max) continue; // a smaller one may still fit
      bytes += e.wireBytes + 1;
      out.push(e.signed);
    }
    return out;
  }

  /** Servers of a model that are joining or online, sorted by peer id. */
  servers(model: string): SwarmRecord[] {
    return this.entries(model).map((e) => e.record).filter((r) => r.state !== "offline");
  }

  /** Spans of a model's servers (joining/online). */
  spans(model: string): ServerSpan[] {
    return this.servers(model).map((r) => ({
      peerId: r.peerId,
      start: r.start,
      end: r.end,
      state: r.state,
      throughput: r.throughput,
    }));
  }

  /** Models announced by anyone. */
  models(): string[] {
    return [...new Set(this.entries().map((e) => e.record.model))].sort();
  }

  /** Sum of throughputs per block (joining and online servers count). */
  coverage(model: string, numBlocks: number): number[] {
    const cov = new Array<number>(numBlocks).fill(0);
    for (const r of this.servers(model)) {
      for (let b = r.start; b < Math.min(r.end, numBlocks); b++) cov[b] += r.throughput;
    }
    return cov;
  }

  get size(): number {
    return this.entries().length;
  }

  onChange(listener: TableListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: Parameters<TableListener>[0]): void {
    for (const l of this.#listeners) {
      try {
        l(event);
      } catch (err) {
        this.#logger.warn("swarm table listener failed", { err });
      }
    }
  }
}
