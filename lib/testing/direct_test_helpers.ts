/**
 * Test helpers for the direct path: listeners and attached sessions on loopback, raw sockets that
 * speak the hello by hand, and checks of how a connection ends. Test-only. @module
 */
import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import {
  connectDirect,
  type ConnectDirectOptions,
  DIRECT_HELLO_BYTES,
  DIRECT_MAGIC,
  type DirectFrameChannel,
  writeAll,
} from "../wire/direct_channel.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher } from "../wire/direct_cipher.ts";
import { DirectListener, type DirectListenerOptions, type DirectTicket } from "../wire/direct_listener.ts";
import type { DirectOffer, ErrorMessage, WireMessage } from "../wire/protocol_messages.ts";
import { tensor } from "../wire/tensor_codec.ts";

export { writeAll };

export const HOST = "127.0.0.1";

/** A started listener on a free loopback port. */
export async function started(options: Partial<DirectListenerOptions> = {}): Promise<DirectListener> {
  const listener = new DirectListener({ host: HOST, port: 0, ...options });
  await listener.start();
  return listener;
}

/** A listener on a free port with one open offer, for raw clients. */
export async function listening(options: Partial<DirectListenerOptions> = {}) {
  const listener = await started(options);
  const ticket = listener.offer();
  return { listener, ticket };
}

/**
 * Connects to `ticket`'s offer and checks that the listener attached the server's end. Sealed
 * frames unless `options.plain` (the tests of the sealed framing run on loopback too).
 */
export async function attach(
  ticket: DirectTicket,
  options: ConnectDirectOptions = {},
): Promise<{ client: DirectFrameChannel; server: DirectFrameChannel }> {
  const client = await connectDirect(HOST, ticket.offer, { plain: false, ...options });
  const server = await ticket.attached;
  if (!server) client.abort();
  assert.ok(server, "the listener attached the session");
  return { client, server };
}

/** Aborts both ends of an attached session. */
export function abortAll(ends: { client: DirectFrameChannel; server: DirectFrameChannel }): void {
  ends.client.abort();
  ends.server.abort();
}

export interface Connected {
  listener: DirectListener;
  client: DirectFrameChannel;
  server: DirectFrameChannel;
  /** Aborts both ends and stops the listener. */
  close(): Promise<void>;
}

/** A listener on a free port and one session attached through it (client and server ends). */
export async function connected(
  options: Partial<DirectListenerOptions> = {},
  connect: ConnectDirectOptions = {},
): Promise<Connected> {
  const listener = await started(options);
  try {
    const ends = await attach(listener.offer(), connect);
    return {
      listener,
      ...ends,
      async close() {
        abortAll(ends);
        await listener.stop();
      },
    };
  } catch (err) {
    await listener.stop();
    throw err;
  }
}

/** The hello a client sends for `ticket` (magic, then the ticket's bytes). */
export function hello(ticket: string, magic: Uint8Array = DIRECT_MAGIC): Uint8Array {
  const h = new Uint8Array(DIRECT_HELLO_BYTES);
  h.set(magic);
  h.set(decodeSecret(ticket, "ticket"), DIRECT_MAGIC.byteLength);
  return h;
}

export async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await conn.read(out.subarray(got));
    if (k === null) throw new Error(`connection ended after ${got} of ${n} bytes`);
    got += k;
  }
  return out;
}

/** Resolves "closed" once the peer ends or resets the connection (whatever it sent is discarded). */
export async function untilClosed(conn: Deno.Conn): Promise<"closed"> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while ((await conn.read(buf)) !== null) {
      // discard
    }
  } catch {
    // reset by peer counts as closed
  }
  return "closed";
}

/**
 * Sends the hello for `offer` on a raw socket and checks the server's proof (one length-prefixed
 * empty frame under the offer's key); returns the client's cipher, its counters past the proof.
 */
export async function proveRaw(conn: Deno.Conn, offer: DirectOffer): Promise<DirectCipher> {
  await writeAll(conn, hello(offer.ticket));
  const proof = await readExactly(conn, 1 + DIRECT_SEAL_OVERHEAD);
  assert.equal(proof[0], DIRECT_SEAL_OVERHEAD, "the proof is one length-prefixed empty frame");
  const cipher = new DirectCipher(decodeSecret(offer.key, "key"), "client");
  assert.equal(cipher.open(proof.subarray(1)).byteLength, 0, "the proof opens under the offer's key");
  return cipher;
}

/** Checks a WireError's class, code, message and hint (for `assert.rejects` / `assert.throws`). */
export function assertWireError(err: unknown, code: string, re: RegExp): true {
  assert.ok(err instanceof WireError, `expected WireError, got ${err}`);
  assert.equal(err.code, code);
  assert.match(err.message, re);
  assert.ok(err.hint.length > 0, "hint");
  return true;
}

/** How a read of a connection the server ended goes: a clean null, or an error. */
export async function readEnd(
  ch: { read(): Promise<WireMessage | null> },
): Promise<WireMessage | null | "error"> {
  try {
    return await ch.read();
  } catch {
    return "error";
  }
}

/** Checks that `ch` ends without another frame (a clean null or an error); `what` names the check. */
export async function assertEnds(ch: { read(): Promise<WireMessage | null> }, what: string): Promise<void> {
  const end = await readEnd(ch);
  assert.ok(end === null || end === "error", `${what}, got ${JSON.stringify(end)}`);
}

/** Reads the next frame from `ch` and checks that it is an error frame with `code`. */
export async function readErrorFrame(
  ch: { read(): Promise<WireMessage | null> },
  code: string,
): Promise<ErrorMessage> {
  const err = await ch.read();
  assert.ok(err?.type === "error", `expected an error frame, got ${JSON.stringify(err)}`);
  assert.equal(err.code, code);
  return err;
}

/** A tensor of values that only survive a bit-exact path (-0, a subnormal, the largest float, -Infinity, a NaN payload). */
export function bitExactTensor(b: number, t: number, h: number) {
  const data = new Float32Array(b * t * h);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 3.3 + i * 1e-3;
  // values that only survive a bit-exact path
  data[0] = -0;
  data[1] = 1.401298464324817e-45; // smallest subnormal
  data[2] = 3.4028234663852886e38;
  data[3] = -Infinity;
  new Uint32Array(data.buffer)[4] = 0x7fc01234; // NaN with a payload
  return tensor(data, [b, t, h]);
}
