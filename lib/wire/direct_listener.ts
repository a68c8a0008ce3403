/**
 * `DirectListener`: the server's TCP port for direct paths (see direct_channel.ts). The
 * inference handler asks it for an offer per session; a client that presents the offer's ticket
 * within its lifetime gets the session's channel (sealed, or plain on loopback where asked:
 * direct_channel.ts), anything else is dropped without a
 * word: a wrong magic or ticket, a hello that does not arrive within the hello timeout, more
 * unauthenticated connections than the cap, or than the cap per source address (IPv4 address or
 * IPv6 /64), so that one place cannot lock out the others. Tickets are single-use.
 * @module
 */
import { WireError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import type { DirectOffer } from "./protocol_messages.ts";
import { DEFAULT_WIRE_LIMITS, type WireLimits } from "./wire_limits.ts";
import { decodeSecret, DirectCipher, encodeSecret, randomSecret, ticketHash } from "./direct_cipher.ts";
import { addressGroup } from "./ip_address.ts";
import { DIRECT_FRAME_BUDGET, PUNCHED_FRAME_BUDGET } from "./byte_budget.ts";
import {
  type ByteConn,
  DIRECT_HELLO_BYTES,
  DIRECT_MAGIC,
  DIRECT_MAGIC_HASHED,
  DIRECT_MAGIC_PLAIN,
  DIRECT_MAGIC_PLAIN_HASHED,
  DIRECT_MAGIC_PLAIN_V1,
  DIRECT_PLAIN_GRANTED,
  type DirectFrameChannel,
  directFrameChannel,
  loopbackConn,
  sealedFrame,
  writeAll,
} from "./direct_channel.ts";

export interface DirectListenerOptions {
  /** Listen address (the swarm's host, e.g. 0.0.0.0). */
  host: string;
  /** Listen port; 0 picks a free one. */
  port: number;
  limits?: WireLimits;
  /** How long a connection may take to send its hello (default 3 s: a client sends it at once). */
  helloMs?: number;
  /** How long an offer's ticket stays valid (default 10 s). */
  ticketMs?: number;
  /** Most connections waiting for their hello at once (default 64). */
  maxPending?: number;
  /**
   * Most of them from one source address (IPv4 address or IPv6 /64; default 8), so that idle
   * connections from one place cannot take every slot and lock out the clients of others.
   */
  maxPendingPerHost?: number;
  /**
   * Grant plain frames to a client that asks for them on a connection whose two ends are
   * loopback addresses (default true; see direct_channel.ts).
   */
  plainLoopback?: boolean;
  logger?: Logger;
}

/** One session's offer; `attached` resolves with the channel, or null once cancelled or expired. */
export interface DirectTicket {
  readonly offer: DirectOffer;
  readonly attached: Promise<DirectFrameChannel | null>;
  cancel(): void;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);
}

interface Waiting {
  key: Uint8Array;
  resolve: (ch: DirectFrameChannel | null) => void;
  timer: ReturnType<typeof setTimeout>;
}

export class DirectListener {
  #o: DirectListenerOptions;
  readonly #log: Logger;
  readonly #tickets = new Map<string, Waiting>();
  /** Each waiting ticket by its hash (hashed hellos name that). */
  readonly #byHash = new Map<string, string>();
  /** Connections waiting for their hello, with their source's key (`addressGroup`). */
  readonly #pending = new Map<Deno.TcpConn, string>();
  /** How many of them per source key. */
  readonly #perHost = new Map<string, number>();
  #listener: Deno.TcpListener | undefined;
  #accepting: Promise<void> | undefined;
  #rebinding: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(options: DirectListenerOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
  }

  /** The bound port (after `start`). */
  get port(): number {
    if (!this.#listener) {
      throw new WireError("NOT_STARTED", "the direct listener is not started", {
        hint: "call start() first",
      });
    }
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Binds the port; a busy port is a clear error. */
  // deno-lint-ignore require-await
  async start(): Promise<void> {
    if (this.#listener) return;
    this.#listener = bindDirect(this.#o.host, this.#o.port);
    this.#accepting = this.#acceptLoop(this.#listener);
    this.#log.debug("direct path listening", { host: this.#o.host, port: this.port });
  }

  /**
   * Listens on `port` instead (same host): the new socket is bound first, then the old one stops
   * accepting. Connections already made are not touched; a client that was offered the old port
   * and has not connected yet finds it closed and falls back as from any failed direct connect.
   * Throws as `start` does where `port` cannot be bound; the old socket then keeps listening.
   */
  rebind(port: number): Promise<number> {
    // one at a time: two at once would both close the same socket and leave one of theirs open
    const run = this.#rebinding.then(() => this.#rebind(port));
    this.#rebinding = run.catch(() => {});
    return run;
  }

  async #rebind(port: number): Promise<number> {
    const old = this.#listener;
    if (!old || this.#stopped) {
      throw new WireError("NOT_STARTED", "the direct listener is not running", {
        hint: "call start() first",
      });
    }
    const socket = bindDirect(this.#o.host, port);
    try {
      old.close();
    } catch {
      // already closed
    }
    await this.#accepting;
    if (this.#stopped) {
      // stop() ran meanwhile: nothing may listen after it
      socket.close();
      throw new WireError("NOT_STARTED", "the direct listener stopped", { hint: "start it again" });
    }
    this.#o = { ...this.#o, port };
    this.#listener = socket;
    this.#accepting = this.#acceptLoop(socket);
    return this.port;
  }

  /** A fresh single-use offer for one session. */
  offer(): DirectTicket {
    if (!this.#listener || this.#stopped) {
      throw new WireError("NOT_STARTED", "the direct listener is not running", {
        hint: "call start() first",
      });
    }
    const ticket = randomSecret();
    const keyBytes = crypto.getRandomValues(new Uint8Array(32));
    let resolve!: (ch: DirectFrameChannel | null) => void;
    const attached = new Promise<DirectFrameChannel | null>((r) => (resolve = r));
    const timer = setTimeout(() => this.#drop(ticket), this.#o.ticketMs ?? 10_000);
    this.#tickets.set(ticket, { key: keyBytes, resolve, timer });
    this.#byHash.set(encodeSecret(ticketHash(decodeSecret(ticket, "ticket"))), ticket);
    return {
      offer: { port: this.port, ticket, key: encodeSecret(keyBytes), hashed: true },
      attached,
      cancel: () => this.#drop(ticket),
    };
  }

  /** Offers not yet used, cancelled or expired. */
  get openOffers(): number {
    return this.#tickets.size;
  }

  #forget(ticket: string): void {
    this.#tickets.delete(ticket);
    this.#byHash.delete(encodeSecret(ticketHash(decodeSecret(ticket, "ticket"))));
  }

  #drop(ticket: string): void {
    const w = this.#tickets.get(ticket);
    if (!w) return;
    this.#forget(ticket);
    clearTimeout(w.timer);
    w.resolve(null);
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // closed
      }
      const host = addressGroup((conn.remoteAddr as Deno.NetAddr).hostname);
      const fromHost = this.#perHost.get(host) ?? 0;
      if (fromHost >= (this.#o.maxPendingPerHost ?? 8) || !this.#roomFor(fromHost)) {
        conn.close();
        continue;
      }
      this.#pending.set(conn, host);
      this.#perHost.set(host, fromHost + 1);
      void this.#admit(conn);
    }
  }

  async #admit(conn: Deno.TcpConn): Promise<void> {
    const timer = setTimeout(() => this.#reject(conn), this.#o.helloMs ?? 3_000);
    try {
      const buf = new Uint8Array(DIRECT_HELLO_BYTES + 4096);
      let got = 0;
      while (got < DIRECT_HELLO_BYTES) {
        const n = await conn.read(buf.subarray(got));
        if (n === null) return this.#reject(conn);
        got += n;
      }
      const magic = buf.subarray(0, DIRECT_MAGIC.byteLength);
      const hashed = sameBytes(magic, DIRECT_MAGIC_HASHED) || sameBytes(magic, DIRECT_MAGIC_PLAIN_HASHED);
      const askPlain = sameBytes(magic, DIRECT_MAGIC_PLAIN) || sameBytes(magic, DIRECT_MAGIC_PLAIN_HASHED);
      // (an earlier version's plain hello is answered with sealed frames: it sends no confirmation)
      if (
        !askPlain && !hashed && !sameBytes(magic, DIRECT_MAGIC) && !sameBytes(magic, DIRECT_MAGIC_PLAIN_V1)
      ) {
        return this.#reject(conn);
      }
      const named = encodeSecret(buf.subarray(DIRECT_MAGIC.byteLength, DIRECT_HELLO_BYTES));
      const ticket = hashed ? this.#byHash.get(named) : named;
      const w = ticket === undefined ? undefined : this.#tickets.get(ticket);
      if (!w || ticket === undefined || this.#stopped) return this.#reject(conn);
      this.#forget(ticket);
      clearTimeout(w.timer);
      this.#unpend(conn);
      conn.setNoDelay(true);
      const plain = askPlain && this.#o.plainLoopback !== false && loopbackConn(conn);
      // the proof: a frame sealed under the session key, empty or granting plain frames
      const cipher = new DirectCipher(w.key, "server");
      const proof = sealedFrame(cipher, plain ? DIRECT_PLAIN_GRANTED : new Uint8Array(0));
      // plain frames only after the client's sealed confirmation (the channel checks it first:
      // the ticket alone proves nothing, it travels in the clear)
      const channel = directFrameChannel(
        conn,
        plain ? null : cipher,
        this.#o.limits ?? DEFAULT_WIRE_LIMITS,
        buf.slice(DIRECT_HELLO_BYTES, got),
        plain ? cipher : undefined,
        { budget: DIRECT_FRAME_BUDGET, key: (conn.remoteAddr as Deno.NetAddr).hostname },
      );
      // (a client gone already shows as the channel's end on its first read)
      await writeAll(conn, proof).catch(() => {});
      w.resolve(channel);
    } catch (err) {
      this.#log.debug("direct hello failed", { err });
      this.#reject(conn);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Connections waiting for their hello (all sources). */
  get pendingConnections(): number {
    return this.#pending.size;
  }

  /**
   * Whether a connection from a source already holding `fromHost` waiting ones gets a slot: while
   * all are taken, the oldest waiting connection of the source holding the most goes, if that source
   * holds more than this one, so idle connections from a few places cannot keep a new client out.
   */
  #roomFor(fromHost: number): boolean {
    if (this.#pending.size < (this.#o.maxPending ?? 64)) return true;
    let most = "", count = 0;
    for (const [h, n] of this.#perHost) if (n > count) [most, count] = [h, n];
    if (count <= fromHost) return false;
    for (const [c, h] of this.#pending) {
      if (h !== most) continue;
      this.#reject(c); // the oldest (a Map keeps insertion order)
      return true;
    }
    return false;
  }

  #unpend(conn: Deno.TcpConn): void {
    const host = this.#pending.get(conn);
    if (host === undefined) return;
    this.#pending.delete(conn);
    const n = (this.#perHost.get(host) ?? 1) - 1;
    if (n > 0) this.#perHost.set(host, n);
    else this.#perHost.delete(host);
  }

  #reject(conn: Deno.TcpConn): void {
    this.#unpend(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  /** Stops listening; drops waiting connections and offers (attached channels belong to their sessions). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    for (const c of [...this.#pending.keys()]) this.#reject(c);
    for (const t of [...this.#tickets.keys()]) this.#drop(t);
    await this.#accepting;
  }
}

/** A TCP socket listening on `host:port`, or DIRECT_PORT_IN_USE / DIRECT_LISTEN_FAILED naming it. */
function bindDirect(host: string, port: number): Deno.TcpListener {
  try {
    return Deno.listen({ hostname: host, port, transport: "tcp" });
  } catch (err) {
    const busy = err instanceof Deno.errors.AddrInUse;
    throw new WireError(
      busy ? "DIRECT_PORT_IN_USE" : "DIRECT_LISTEN_FAILED",
      `cannot listen for direct paths on ${host}:${port}: ${(err as Error).message}`,
      {
        hint: busy
          ? "another process uses this port: pass --direct-port <free port> (0: any), or -1 to turn the direct path off"
          : "check --host and --direct-port (or DIRECT_PORT=-1 to turn the direct path off)",
        cause: err,
      },
    );
  }
}

/**
 * The server's half of a direct path's handshake on a connection made another way (punched
 * through NATs, lib/swarm/hole_punch.ts) for one known offer: reads the hello, checks that it
 * names `secrets.ticket`, answers with the sealed proof of `secrets.key`. Plain frames are never
 * granted (such a connection crosses a network). Closes `conn` and throws `DIRECT_FAILED` when the
 * hello is wrong or late.
 */
export async function acceptDirect(
  conn: ByteConn,
  secrets: { readonly ticket: string; readonly key: string },
  options: { limits?: WireLimits; helloMs?: number; signal?: AbortSignal } = {},
): Promise<DirectFrameChannel> {
  const helloMs = options.helloMs ?? 5_000;
  const timer = setTimeout(() => conn.close(), helloMs);
  const onAbort = () => conn.close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const want = decodeSecret(secrets.ticket, "ticket");
    const key = decodeSecret(secrets.key, "key");
    const buf = new Uint8Array(DIRECT_HELLO_BYTES + 4096);
    let got = 0;
    while (got < DIRECT_HELLO_BYTES) {
      const n = await conn.read(buf.subarray(got));
      if (n === null) throw new Error("the connection ended before the hello");
      got += n;
    }
    const is = (m: Uint8Array) => m.every((b, i) => buf[i] === b);
    const hashed = is(DIRECT_MAGIC_HASHED) || is(DIRECT_MAGIC_PLAIN_HASHED);
    const magic = hashed || is(DIRECT_MAGIC) || is(DIRECT_MAGIC_PLAIN);
    const named = buf.subarray(DIRECT_MAGIC.byteLength, DIRECT_HELLO_BYTES);
    const expected = hashed ? ticketHash(want) : want;
    if (!magic || !named.every((b, i) => b === expected[i])) {
      throw new Error("the hello does not name this session");
    }
    const cipher = new DirectCipher(key, "server");
    await writeAll(conn, sealedFrame(cipher, new Uint8Array(0)));
    return directFrameChannel(
      conn,
      cipher,
      options.limits ?? DEFAULT_WIRE_LIMITS,
      buf.slice(DIRECT_HELLO_BYTES, got),
      undefined,
      { budget: PUNCHED_FRAME_BUDGET, key: (conn.remoteAddr as Deno.NetAddr).hostname },
    );
  } catch (err) {
    try {
      conn.close();
    } catch {
      // already closed
    }
    throw new WireError("DIRECT_FAILED", `punched direct path failed: ${(err as Error).message}`, {
      hint: "the session goes on over its relayed stream",
      cause: err,
    });
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}
