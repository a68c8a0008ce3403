/**
 * The direct path of an inference session: the session's steps and results travel over a plain
 * TCP connection as ChaCha20-Poly1305 frames instead of through libp2p (noise + yamux + stream code),
 * whose round trip costs an order of magnitude more than raw TCP's (docs/benchmarks.md, "Direct
 * path"; the design and its security argument: docs/protocol.md, "Direct path").
 *
 * How a session gets one (the keys never leave the authenticated libp2p stream):
 *   1. the server's `opened` carries `direct {port, ticket, key}` (random, single-use, expiring);
 *   2. the client connects to `port` on the host it reached the server at and sends
 *      `HELLO` = "PLMDIR01" ‖ ticket (32 bytes), or "PLMDIRP2" ‖ ticket to ask for plain frames
 *      (only where both ends of its connection are loopback addresses, see below);
 *   3. the server answers with a sealed frame (proof that it holds the key): empty, or the one
 *      byte 1 when it grants plain frames;
 *   4. where plain frames were granted, the client first sends a sealed frame of the one byte 1
 *      (its proof of the key; it needs no round trip, plain frames may follow at once), and the
 *      server reads nothing else before it opens;
 *   5. from then on both sides exchange the session's frames (the same frame codec as the
 *      stream), each prefixed with its varint length, sealed by `DirectCipher`, or as they are
 *      where plain frames were granted.
 * The ticket travels in the clear: it only names the offer. Holding it proves nothing, so
 * neither side trusts a frame before the other proved the key: sealed frames prove it each, and
 * plain frames only start after the client's sealed confirmation (step 4). The hello of earlier
 * versions, "PLMDIRP1" (plain frames without a confirmation), gets sealed frames.
 *
 * Plain frames: a connection whose two ends are loopback addresses on both sides (the client
 * asks only when its socket's local and remote addresses are, the server grants only when its
 * socket's are) never leaves the machine, and on it only privileged processes can read or alter
 * the bytes, which could read the processes' memory anyway: the sealed proofs authenticate both
 * ends, and the frames skip sealing and opening, which cost
 * a measurable part of a hop after an onnxruntime step has left the caches cold (servers of one
 * machine pushing to each other, a client on the servers' machine). Either side can refuse
 * (`plain: false`, `DirectListenerOptions.plainLoopback`). A forwarder in between (an SSH tunnel,
 * socat) makes at least one side see a non-loopback peer: where it is the client, it never asks;
 * where only the server sees loopback (ssh -R), someone in the path who changes the hello to ask
 * for plain frames still cannot send one, for want of the key (docs/security.md).
 *
 * The libp2p stream stays open as the session's control: ending either ends the session. A
 * client that cannot connect (firewall, NAT, relay) keeps using the libp2p stream.
 * @module
 */
import { errorMessage, TimeoutError, WireError } from "../errors.ts";
import { timeoutSignal, withTimeout } from "../util/abort.ts";
import { decodeFrame, encodeFrame } from "./frame_codec.ts";
import { encodeVarint, LengthPrefixedDecoder } from "./length_prefix.ts";
import type { DirectOffer, WireMessage } from "./protocol_messages.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { DEFAULT_WIRE_LIMITS, type WireLimits } from "./wire_limits.ts";
import { BudgetShare, type ByteBudget } from "./byte_budget.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher, ticketHash } from "./direct_cipher.ts";
import { isLoopbackAddress } from "./ip_address.ts";

/** First bytes a client sends on a direct connection, followed by the 32-byte ticket. */
export const DIRECT_MAGIC: Uint8Array = new TextEncoder().encode("PLMDIR01");
/** The same, asking for plain frames (see the module doc); as long as DIRECT_MAGIC. */
export const DIRECT_MAGIC_PLAIN: Uint8Array = new TextEncoder().encode("PLMDIRP2");
/** Earlier versions' plain hello (no confirmation followed it): answered with sealed frames. */
export const DIRECT_MAGIC_PLAIN_V1: Uint8Array = new TextEncoder().encode("PLMDIRP1");
/**
 * The hellos that carry the ticket's SHA-256 instead of the ticket (`ticketHash`), sealed and plain:
 * what a server sends when it connects for a client (`link_to`), and a client when the offer says
 * the server takes it (`DirectOffer.hashed`). Listeners take both kinds.
 */
export const DIRECT_MAGIC_HASHED: Uint8Array = new TextEncoder().encode("PLMDIRH1");
export const DIRECT_MAGIC_PLAIN_HASHED: Uint8Array = new TextEncoder().encode("PLMDIRH2");
/** Length of the hello (magic + ticket or its hash). */
export const DIRECT_HELLO_BYTES: number = DIRECT_MAGIC.byteLength + 32;
/** The proof's plaintext when the server grants plain frames (an empty proof keeps them sealed). */
export const DIRECT_PLAIN_GRANTED: Uint8Array = Uint8Array.of(1);
/** The client's confirmation's plaintext (sealed under the session key) before plain frames start. */
export const DIRECT_PLAIN_CONFIRM: Uint8Array = Uint8Array.of(1);

/**
 * What a direct path needs of its connection: a Deno TCP connection, or another stream socket
 * shaped like one (a hole-punched socket, lib/swarm/hole_punch.ts).
 */
export type ByteConn = Pick<Deno.Conn, "read" | "write" | "close" | "localAddr" | "remoteAddr">;

/** Whether both ends of `conn` are loopback addresses (a connection within one machine). */
export function loopbackConn(conn: ByteConn): boolean {
  const ends = [conn.localAddr, conn.remoteAddr];
  return ends.every((a) => a.transport === "tcp" && isLoopbackAddress((a as Deno.NetAddr).hostname));
}

/** `plain` as one length-prefixed frame sealed by `cipher` (the next of its frames). */
export function sealedFrame(cipher: DirectCipher, plain: Uint8Array): Uint8Array {
  const prefix = encodeVarint(plain.byteLength + DIRECT_SEAL_OVERHEAD);
  const bytes = cipher.sealInto(plain, prefix.byteLength);
  bytes.set(prefix, 0);
  return bytes;
}
/** Frames read ahead of the consumer before the connection stops being read (backpressure). */
const READ_AHEAD = 2;

/** Writes all of `bytes` to `conn` (a socket write may take only part of them). */
export async function writeAll(conn: ByteConn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

/** A `FrameChannel` over an established, authenticated direct connection, plus raw frames. */
export interface DirectFrameChannel extends FrameChannel {
  /** The next frame's plaintext bytes (before the frame codec); null at a clean end. */
  readRaw(options?: { signal?: AbortSignal }): Promise<Uint8Array | null>;
  /** Seals and writes plaintext bytes as the next frame (no frame codec). */
  writeRaw(plain: Uint8Array, options?: { signal?: AbortSignal }): Promise<void>;
  /** Whether frames are sealed (false: plain frames on a loopback connection, see the module doc). */
  readonly sealed: boolean;
}

/**
 * Wraps a connected, authenticated socket whose frames `cipher` seals and opens (from its current
 * counters: the proof went before), or that carries plain frames (`cipher` null). `initial` are
 * bytes already read past the hello or the proof. With `confirmBy` (plain frames, server side),
 * the first incoming frame must be the client's confirmation sealed under that cipher
 * (DIRECT_PLAIN_CONFIRM): anything else fails the channel before a frame is read. One reader loop
 * pulls frames off the socket and opens them in order; `read` waits for the next one and can be
 * aborted by its signal without harming the connection (so an error frame can still be written).
 */
export function directFrameChannel(
  conn: ByteConn,
  cipher: DirectCipher | null,
  limits: WireLimits = DEFAULT_WIRE_LIMITS,
  initial?: Uint8Array,
  confirmBy?: DirectCipher,
  /**
   * Where the bytes this channel holds beyond `FREE_PENDING_BYTES` (a frame being received, frames
   * read ahead) are taken from, under `key` (the client's address); past it the connection is
   * dropped and reads fail with BUSY. None: unbounded but for the frame cap (a client's own channel).
   */
  held?: { budget: ByteBudget; key: string },
): DirectFrameChannel {
  const overhead = cipher || confirmBy ? DIRECT_SEAL_OVERHEAD : 0;
  const decoder = new LengthPrefixedDecoder(limits.maxFrameBytes + overhead);
  let confirming = confirmBy;
  const frames: Uint8Array[] = [];
  let ended = false;
  let failure: unknown;
  let closed = false;
  let wakeReader: (() => void) | undefined;
  let wakePump: (() => void) | undefined;
  let writing: Promise<unknown> = Promise.resolve();
  let pendingWrites = 0;

  /** Bytes of the frames read ahead (`frames`). */
  let queued = 0;
  const share = held && new BudgetShare(held.budget, held.key);
  /** False when the budget refuses what the channel holds now. */
  // (once the connection ended, a frame it left incomplete is never read)
  const account = () => share?.hold((ended ? 0 : decoder.buffered) + queued) ?? true;
  const wake = () => {
    const w = wakeReader;
    wakeReader = undefined;
    w?.();
  };
  const accept = (bytes: Uint8Array) => {
    for (const frame of decoder.push(bytes)) {
      if (confirming) {
        const c = confirming;
        confirming = undefined;
        const plain = c.open(frame); // BAD_FRAME when not sealed under the session key
        if (plain.byteLength !== 1 || plain[0] !== DIRECT_PLAIN_CONFIRM[0]) {
          throw new WireError("BAD_FRAME", "the client's confirmation of the session key is wrong", {
            hint: "plain frames need the client's sealed confirmation first; check protocol versions",
          });
        }
        continue;
      }
      const f = cipher ? cipher.open(frame) : frame;
      frames.push(f);
      queued += f.byteLength;
    }
    if (!account()) {
      throw new WireError(
        "BUSY",
        `${share!.budget.held()} bytes of direct frames held (${share!.budget.held(share!.key)} from ${
          share!.key
        }), the most`,
        { hint: "the connection was dropped; send less at once, or to another server" },
      );
    }
  };
  const shut = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
    // dropped: no frame read ahead is served, and none is held (the pump may have ended already,
    // after the peer closed its side, leaving them counted)
    frames.length = 0;
    queued = 0;
    account();
    wakePump?.();
  };
  const pump = async () => {
    const buf = new Uint8Array(16 * 1024);
    try {
      if (initial?.byteLength) accept(initial);
      while (!closed) {
        while (frames.length >= READ_AHEAD && !closed) {
          await new Promise<void>((r) => (wakePump = r));
          wakePump = undefined;
        }
        if (closed) break;
        const n = await conn.read(buf);
        if (n === null) break;
        accept(buf.slice(0, n));
        wake();
      }
      if (decoder.buffered > 0 && !closed) {
        throw new WireError(
          "BAD_FRAME",
          `direct connection ended inside a frame (${decoder.buffered} bytes pending)`,
          {
            hint: "the peer failed or sent a truncated frame",
          },
        );
      }
    } catch (err) {
      if (!closed) failure = err;
      shut();
    } finally {
      ended = true;
      if (closed) {
        // dropped or failed: no frame read ahead is served, and none is held
        frames.length = 0;
        queued = 0;
      }
      account();
      wake();
    }
  };
  void pump();

  const readRaw = async (options?: { signal?: AbortSignal }): Promise<Uint8Array | null> => {
    const signal = options?.signal;
    for (;;) {
      const f = frames.shift();
      if (f) {
        queued -= f.byteLength;
        account();
        wakePump?.();
        return f;
      }
      if (failure) throw failure;
      if (ended) {
        if (closed && !failure) {
          throw new WireError("STREAM_CLOSED", "the direct connection is closed", {
            hint: "the session ended; open a new one",
          });
        }
        return null;
      }
      signal?.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          wakeReader = undefined;
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        wakeReader = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
  };

  const writeRaw = (plain: Uint8Array, options?: { signal?: AbortSignal }): Promise<void> => {
    if (closed) {
      return Promise.reject(
        new WireError("STREAM_CLOSED", "the direct connection is closed", { hint: "open a new session" }),
      );
    }
    if (options?.signal?.aborted) return Promise.reject(options.signal.reason);
    // seal in call order (the nonce counter) and write in the same order
    let bytes: Uint8Array;
    if (cipher) bytes = sealedFrame(cipher, plain);
    else {
      const prefix = encodeVarint(plain.byteLength);
      bytes = new Uint8Array(prefix.byteLength + plain.byteLength);
      bytes.set(prefix, 0);
      bytes.set(plain, prefix.byteLength);
    }
    // write at once when nothing is queued (the common case: one frame per step)
    const done = pendingWrites === 0 ? writeAll(conn, bytes) : writing.then(() => writeAll(conn, bytes));
    pendingWrites++;
    writing = done.catch(() => {}).finally(() => pendingWrites--);
    if (!options?.signal) return done;
    const signal = options.signal;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        shut();
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      done.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  };

  return {
    remoteHost: (conn.remoteAddr as Deno.NetAddr).hostname,
    sealed: cipher !== null,
    readRaw,
    writeRaw,
    async read(options): Promise<WireMessage | null> {
      const plain = await readRaw(options);
      return plain === null ? null : decodeFrame(plain, limits);
    },
    write(message, options) {
      let plain: Uint8Array;
      try {
        plain = encodeFrame(message, limits);
      } catch (err) {
        return Promise.reject(err);
      }
      return writeRaw(plain, options);
    },
    async close() {
      await writing;
      shut();
    },
    abort() {
      shut();
    },
    get writable() {
      return !closed;
    },
  };
}

/** `conn.read(buf)`, or a rejection with `signal`'s reason once it aborts (the caller then closes `conn`). */
function readOrAbort(conn: ByteConn, buf: Uint8Array, signal: AbortSignal): Promise<number | null> {
  signal.throwIfAborted();
  return new Promise<number | null>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    conn.read(buf).then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

export interface ConnectDirectOptions {
  signal?: AbortSignal;
  /** TCP connect timeout (default 2 s). */
  connectMs?: number;
  /** Wait for the server's proof after the hello (default 5 s). */
  ackMs?: number;
  limits?: WireLimits;
  /**
   * Ask for plain frames where both ends of the connection are loopback addresses (default true;
   * see the module doc). The server may still keep them sealed.
   */
  plain?: boolean;
  /**
   * Send the ticket's hash, not the ticket (default: when the offer says `hashed`). A server that
   * connects for a client sets it: the ticket is the client's to choose.
   */
  hashTicket?: boolean;
}

/**
 * Client side: connects to an offered direct path and verifies the server's proof of the key.
 * Throws `WireError` `DIRECT_FAILED` (with the reason) when it cannot; the caller falls back to
 * the libp2p stream.
 */
export async function connectDirect(
  host: string,
  offer: DirectOffer,
  options: ConnectDirectOptions = {},
): Promise<DirectFrameChannel> {
  options.signal?.throwIfAborted();
  decodeSecret(offer.ticket, "direct.ticket");
  decodeSecret(offer.key, "direct.key");
  const failed = (why: string, cause?: unknown) =>
    new WireError("DIRECT_FAILED", `direct path to ${host}:${offer.port} failed: ${why}`, {
      hint: "a firewall or NAT may block the server's direct port; the session uses the libp2p stream",
      cause,
    });
  const connectMs = options.connectMs ?? 2_000;
  const connecting = Deno.connect({ hostname: host, port: offer.port, transport: "tcp" });
  let conn: Deno.TcpConn;
  try {
    conn = await withTimeout(connectMs, () => connecting, { signal: options.signal });
  } catch (err) {
    // a connection that completes after we gave up is closed at once
    connecting.then((late) => late.close(), () => {});
    if (err === options.signal?.reason) throw err;
    throw failed(
      err instanceof TimeoutError ? `no TCP connection within ${connectMs} ms` : errorMessage(err),
      err,
    );
  }
  conn.setNoDelay(true);
  return await helloDirect(conn, host, offer, options);
}

/**
 * The client's half of a direct path's handshake on a connection that is already open (made by
 * `connectDirect`, or punched through NATs): sends the hello with the offer's ticket and checks
 * the server's proof of the key. Closes `conn` and throws `DIRECT_FAILED` when it fails.
 */
export async function helloDirect(
  conn: ByteConn,
  host: string,
  offer: DirectOffer,
  options: Omit<ConnectDirectOptions, "connectMs"> = {},
): Promise<DirectFrameChannel> {
  const failed = (why: string, cause?: unknown) =>
    new WireError("DIRECT_FAILED", `direct path to ${host}:${offer.port} failed: ${why}`, {
      hint: "a firewall or NAT may block the server's direct port; the session uses the libp2p stream",
      cause,
    });
  const ackMs = options.ackMs ?? 5_000;
  const t = timeoutSignal(ackMs, options.signal);
  try {
    const ticket = decodeSecret(offer.ticket, "direct.ticket");
    const key = decodeSecret(offer.key, "direct.key");
    const askPlain = options.plain !== false && loopbackConn(conn);
    const hashed = options.hashTicket ?? offer.hashed === true;
    const hello = new Uint8Array(DIRECT_HELLO_BYTES);
    if (hashed) hello.set(askPlain ? DIRECT_MAGIC_PLAIN_HASHED : DIRECT_MAGIC_HASHED);
    else hello.set(askPlain ? DIRECT_MAGIC_PLAIN : DIRECT_MAGIC);
    hello.set(hashed ? ticketHash(ticket) : ticket, DIRECT_MAGIC.byteLength);
    await writeAll(conn, hello);
    // the proof: the first frame, sealed under the session key; what follows it is the channel's
    const cipher = new DirectCipher(key, "client");
    const decoder = new LengthPrefixedDecoder(DIRECT_PLAIN_GRANTED.byteLength + DIRECT_SEAL_OVERHEAD);
    const buf = new Uint8Array(4096);
    let proof: Uint8Array | undefined;
    while (!proof) {
      const n = await readOrAbort(conn, buf, t.signal);
      if (n === null) throw failed("the server closed the connection before proving the session key");
      proof = decoder.pushOne(buf.slice(0, n));
    }
    const ack = cipher.open(proof);
    const plain = askPlain && ack.byteLength === 1 && ack[0] === DIRECT_PLAIN_GRANTED[0];
    if (ack.byteLength !== 0 && !plain) throw failed("the server did not prove the session key");
    // plain frames start only after our proof of the key (the server reads nothing else first)
    if (plain) await writeAll(conn, sealedFrame(cipher, DIRECT_PLAIN_CONFIRM));
    return directFrameChannel(conn, plain ? null : cipher, options.limits, decoder.drain());
  } catch (err) {
    conn.close();
    if (err === options.signal?.reason || (err instanceof WireError && err.code === "DIRECT_FAILED")) {
      throw err;
    }
    throw failed(
      err instanceof TimeoutError ? `no proof from the server within ${ackMs} ms` : errorMessage(err),
      err,
    );
  } finally {
    t.clear();
  }
}
