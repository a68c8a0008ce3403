/**
 * `RecordFlooder`: passes records on to the connected peers at a bounded rate. A peer's record is
 * passed on at most once per `perPeerMs` (a newer one that arrives sooner waits, and only the
 * newest of those goes, at the end of the interval), and all records together at most
 * `perSecond` per second (with a burst of twice that); records waiting for the global budget are
 * kept one per peer, the newest. So however fast records arrive, what this node sends on is
 * bounded, and a state change still goes out within `perPeerMs` (docs/protocol.md, "Records").
 * @module
 */
import type { SignedRecordWire } from "../wire/mod.ts";
import { RateBudget } from "./rate_budget.ts";

export interface RecordFlooderOptions {
  /** Sends a record to every connected peer but `except` (the one it came from). */
  send: (record: SignedRecordWire, except: string | undefined) => Promise<void>;
  /** Least time between two floods of one peer's record (default 1 s). */
  perPeerMs?: number;
  /** Records flooded per second, all peers together (default 50). */
  perSecond?: number;
  now?: () => number;
}

interface Pending {
  record: SignedRecordWire;
  except: string | undefined;
}

export class RecordFlooder {
  readonly #o: RecordFlooderOptions;
  readonly #now: () => number;
  readonly #perPeerMs: number;
  readonly #global: RateBudget;
  readonly #perSecond: number;
  /** When each peer's record was last flooded (bounded by the peers flooded within perPeerMs). */
  readonly #last = new Map<string, number>();
  /** Waiting records, one per peer, in the order their peers first waited. */
  readonly #pending = new Map<string, Pending>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #stopped = false;
  readonly #sending = new Set<Promise<void>>();
  /** Records sent on, and records replaced by a newer one before they went (tests, metrics). */
  readonly stats = { sent: 0, coalesced: 0 };

  constructor(options: RecordFlooderOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#perPeerMs = options.perPeerMs ?? 1_000;
    const perSecond = this.#perSecond = options.perSecond ?? 50;
    this.#global = new RateBudget({ burst: 2 * perSecond, perMinute: 60 * perSecond, now: this.#now });
  }

  /** Passes `record` of `peerId` on, now or as soon as the budgets allow (the newest wins). */
  flood(peerId: string, record: SignedRecordWire, except?: string): void {
    if (this.#stopped) return;
    if (this.#pending.has(peerId)) this.stats.coalesced++;
    // a newer record replaces the waiting one but keeps its place in line
    this.#pending.set(peerId, { record, except });
    this.#drain();
  }

  /** Records waiting to go. */
  get waiting(): number {
    return this.#pending.size;
  }

  #drain(): void {
    const now = this.#now();
    let wakeAt = Infinity;
    for (const [peerId, p] of this.#pending) {
      const last = this.#last.get(peerId);
      if (last !== undefined && now - last < this.#perPeerMs) {
        wakeAt = Math.min(wakeAt, last + this.#perPeerMs);
        continue;
      }
      if (!this.#global.take("all")) {
        wakeAt = Math.min(wakeAt, now + 1000 / this.#perSecond);
        break;
      }
      this.#pending.delete(peerId);
      this.#last.set(peerId, now);
      this.stats.sent++;
      const sending = this.#o.send(p.record, p.except).catch(() => {});
      this.#sending.add(sending);
      void sending.finally(() => this.#sending.delete(sending));
    }
    // forget peers whose interval is over (and nothing waits for them)
    for (const [peerId, at] of this.#last) {
      if (now - at >= this.#perPeerMs && !this.#pending.has(peerId)) this.#last.delete(peerId);
    }
    if (wakeAt < this.#timerAt) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timerAt = wakeAt;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#timerAt = Infinity;
        if (!this.#stopped) this.#drain();
      }, Math.max(1, wakeAt - now));
    }
  }

  /** Drops what waits, stops the timer and waits for the floods in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
    await Promise.allSettled([...this.#sending]);
  }
}
