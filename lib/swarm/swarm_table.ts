/**
 * The swarm table: the verified records this node knows, newest `seq` per peer, expired ones
 * dropped. Queries: servers of a model, per-block coverage, spans.
 * @module
 */
import type { SignedRecordWire, SwarmRecord } from "../wire/mod.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { PlumiseError } from "../errors.ts";
import { verifySignedRecord } from "./record_signer.ts";

export interface SwarmTableOptions {
  now?: () => number;
  logger?: Logger;
  /** Records further in the future than this are refused (default 1 h). */
  maxTtlMs?: number;
  /** Most peers kept (default 10 000). */
  maxRecords?: number;
}

export type OfferResult =
  | { accepted: true; record: SwarmRecord; previous?: SwarmRecord }
  | { accepted: false; reason: string; code: string };

export interface TableEntry {
  readonly record: SwarmRecord;
  readonly signed: SignedRecordWire;
  /** Unix ms when this node first saw the peer. */
  readonly firstSeen: number;
}

export type TableListener = (event: { type: "upsert" | "remove"; record: SwarmRecord }) => void;

/** A server's span for routing and display. */
export interface ServerSpan {
  readonly peerId: string;
  readonly start: number;
  readonly end: number;
  readonly state: SwarmRecord["state"];
  readonly throughput: number;
}

export class SwarmTable {
  readonly #now: () => number;
  readonly #logger: Logger;
  readonly #maxTtl: number;
  readonly #max: number;
  readonly #entries = new Map<string, TableEntry>();
  readonly #listeners = new Set<TableListener>();
  /** Counts of rejections by code (tests and metrics). */
  readonly rejected: Map<string, number> = new Map();

  constructor(options: SwarmTableOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#logger = options.logger ?? silentLogger;
    this.#maxTtl = options.maxTtlMs ?? 3_600_000;
    this.#max = options.maxRecords ?? 10_000;
  }

  /** Verifies and stores a signed record if it is newer than what we have. */
  async offer(signed: SignedRecordWire): Promise<OfferResult> {
    const now = this.#now();
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
    const prev = this.#entries.get(record.peerId);
    if (prev && record.seq <= prev.record.seq) {
      return this.#reject(
        "RECORD_STALE",
        `record of ${record.peerId} has seq ${record.seq} ≤ known ${prev.record.seq}`,
      );
    }
    if (!prev && this.#entries.size >= this.#max) {
      this.prune();
      if (this.#entries.size >= this.#max) {
        return this.#reject("TABLE_FULL", `swarm table holds ${this.#max} peers`);
      }
    }
    this.#entries.set(record.peerId, { record, signed, firstSeen: prev?.firstSeen ?? now });
    this.#emit({ type: "upsert", record });
    return prev ? { accepted: true, record, previous: prev.record } : { accepted: true, record };
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

  /** Signed records to hand out in a table pull. */
  signedRecords(model?: string): SignedRecordWire[] {
    return this.entries(model).map((e) => e.signed);
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
