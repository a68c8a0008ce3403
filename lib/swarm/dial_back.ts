/**
 * The reachability protocol `/plumise/reach/1.0.0` (docs/protocol.md, "Reachability"): a peer
 * asks "how do you see me, and can you reach me at that address on my port?"; this side answers
 * with the host the asking connection came from and, when a port was given, whether a fresh
 * connection to that host and port reached the asking peer (its peer id proven by the handshake).
 *
 * What it costs the answering side, and why it cannot be turned on others: it connects only to the
 * address the request came from (never a third party), at most once per peer every 10 s, at most
 * 4 at once, each bounded by a timeout, only on the internet (`dialable`), with one answer for
 * every failure; over a relayed connection it sees no address and dials nothing.
 * @module
 */
import { SwarmError } from "../errors.ts";
import { timeoutSignal } from "../util/abort.ts";
import type { FrameChannel, ReachMessage } from "../wire/mod.ts";
import { closeWithin, DEFAULT_WRITE_MS, writeWithin } from "./stream_replies.ts";

export interface DialBackOptions {
  /** Opens a fresh connection to `peerId` at host:port and closes it; rejects when it cannot. */
  dial(host: string, port: number, peerId: string, options: { signal: AbortSignal }): Promise<void>;
  /** One dial-back's limit (default 4 s). */
  timeoutMs?: number;
  /** Dial-backs at once (default 4). */
  maxConcurrent?: number;
  /** Least time between two dial-backs for one peer (default 10 s). */
  perPeerIntervalMs?: number;
  /**
   * Whether a host may be dialed back (default: every host). The node passes "on the internet"
   * (NAT_SCOPE): behind a tunnel or a proxy every peer seems to come from loopback or a private
   * address, and dialing back there would probe the node's own network for a stranger; nobody
   * counts a verdict about such an address anyway (reachability.ts).
   */
  dialable?: (host: string) => boolean;
  now?: () => number;
}

/** Where the asking peer's connection came from. */
export interface ReachRemote {
  readonly peerId: string;
  /** Its IP (undefined: the connection is relayed). */
  readonly host: string | undefined;
}

/** The answering side of the reachability protocol. */
export class DialBackService {
  readonly #o: DialBackOptions;
  readonly #now: () => number;
  readonly #last = new Map<string, number>();
  #running = 0;

  constructor(options: DialBackOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Dial-backs running now. */
  get running(): number {
    return this.#running;
  }

  /** Answers one request on `ch` (the stream's first frame); never throws. */
  async serve(ch: FrameChannel, remote: ReachRemote): Promise<void> {
    const t = timeoutSignal(10_000);
    try {
      const msg = await ch.read({ signal: t.signal });
      if (msg === null) return await closeWithin(ch, DEFAULT_WRITE_MS);
      if (msg.type !== "reach_request") {
        throw new SwarmError("BAD_FRAME", `expected reach_request, got ${msg.type}`);
      }
      await writeWithin(ch, await this.answer(remote, msg.port), DEFAULT_WRITE_MS, t.signal);
      await closeWithin(ch, DEFAULT_WRITE_MS);
    } catch {
      ch.abort();
    } finally {
      t.clear();
    }
  }

  /** The reply to a request from `remote` (with a dial-back to `port` when given and allowed). */
  async answer(remote: ReachRemote, port: number | undefined): Promise<ReachMessage> {
    if (remote.host === undefined) {
      return { type: "reach", reason: "the connection is relayed: no address to see or dial" };
    }
    const host = remote.host;
    if (port === undefined) return { type: "reach", host };
    if (this.#o.dialable && !this.#o.dialable(host)) {
      return { type: "reach", host, reason: "an address off the internet is not dialed back" };
    }
    const now = this.#now();
    const last = this.#last.get(remote.peerId);
    if (last !== undefined && now - last < (this.#o.perPeerIntervalMs ?? 10_000)) {
      return { type: "reach", host, reason: "asked again too soon" };
    }
    if (this.#running >= (this.#o.maxConcurrent ?? 4)) return { type: "reach", host, reason: "busy" };
    this.#last.set(remote.peerId, now);
    if (this.#last.size > 4096) this.#last.delete(this.#last.keys().next().value!);
    this.#running++;
    const t = timeoutSignal(this.#o.timeoutMs ?? 4_000);
    try {
      await this.#o.dial(host, port, remote.peerId, { signal: t.signal });
      return { type: "reach", host, dialed: true };
    } catch {
      // one answer for every failure (refused, silent, another peer there): the reply tells the
      // asker nothing about what listens at that address besides itself
      return { type: "reach", host, dialed: false, reason: "could not connect back" };
    } finally {
      t.clear();
      this.#running--;
    }
  }
}

/** Asks the peer on `ch` how it sees this node (and to dial back `port`); closes `ch`. */
export async function askReach(
  ch: FrameChannel,
  port: number | undefined,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<ReachMessage> {
  // the answer may wait for the dial-back (4 s by default) first
  const t = timeoutSignal(options.timeoutMs ?? 8_000, options.signal);
  try {
    await ch.write(port === undefined ? { type: "reach_request" } : { type: "reach_request", port }, {
      signal: t.signal,
    });
    const reply = await ch.read({ signal: t.signal });
    if (reply?.type !== "reach") {
      throw new SwarmError("BAD_FRAME", `reach_request answered ${reply === null ? "nothing" : reply.type}`, {
        hint: "the peer runs an older plumise without the reachability protocol",
      });
    }
    await ch.close();
    return reply;
  } catch (err) {
    ch.abort();
    throw err;
  } finally {
    t.clear();
  }
}
