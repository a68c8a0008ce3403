/**
 * Serving `/plumise/table/1.0.0`: a table request answered with the signed records of the peers
 * this node reached itself, as many as fit one frame. Building and encoding a full reply takes
 * milliseconds, so requests are rate-limited per peer and for all peers together: past either
 * budget the answer is `BUSY` at once (a client's table pulls, at start, on a retry, periodically,
 * stay far below it).
 * @module
 */
import { SwarmError } from "../errors.ts";
import { protocolError, protocolMessage, toProtocolCode, type WireLimits } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { RateBudget } from "./rate_budget.ts";
import { closeWithin, DEFAULT_WRITE_MS, readFirst, replyError, writeWithin } from "./stream_replies.ts";
import type { SwarmTable } from "./swarm_table.ts";

/** Table replies one peer may ask for at once, and per minute. */
export const TABLE_REQUESTS_PER_PEER = { burst: 10, perMinute: 60 } as const;
/**
 * Table replies all peers together may ask for at once, and per minute: a bootstrap node of a
 * swarm of thousands (each node pulls its initial peers every 30 s) stays below it.
 */
export const TABLE_REQUESTS_IN_ALL = { burst: 200, perMinute: 6000 } as const;

export class TableServer {
  readonly #table: SwarmTable;
  readonly #limits: WireLimits;
  readonly #perPeer: RateBudget;
  readonly #all: RateBudget;

  constructor(table: SwarmTable, limits: WireLimits, options: { now?: () => number } = {}) {
    this.#table = table;
    this.#limits = limits;
    this.#perPeer = new RateBudget({ ...TABLE_REQUESTS_PER_PEER, now: options.now });
    this.#all = new RateBudget({ ...TABLE_REQUESTS_IN_ALL, now: options.now });
  }

  /** Answers one request from `peerId` on `ch`; never throws. */
  async serve(ch: FrameChannel, peerId: string): Promise<void> {
    try {
      const msg = await readFirst(ch, 10_000);
      if (msg === null) return await closeWithin(ch, DEFAULT_WRITE_MS);
      if (msg.type !== "table_request") {
        throw new SwarmError("BAD_FRAME", `expected table_request, got ${msg.type}`);
      }
      // the overall budget first: a refusal there spends nothing of the peer's
      if (this.#all.available("*") < 1 || !this.#perPeer.take(peerId) || !this.#all.take("*")) {
        throw protocolError("BUSY", "too many table requests; ask again in a few seconds");
      }
      // only peers this node reached itself, as many as fit one frame (online and newest first)
      const records = this.#table.signedRecords(msg.model, {
        reachableOnly: true,
        maxBytes: this.#limits.maxHeaderBytes - 4096,
      });
      await writeWithin(ch, { type: "table", records }, DEFAULT_WRITE_MS);
      await closeWithin(ch, DEFAULT_WRITE_MS);
    } catch (err) {
      await replyError(ch, toProtocolCode(err), protocolMessage(err));
    }
  }
}
