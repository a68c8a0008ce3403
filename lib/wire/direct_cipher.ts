/**
 * `DirectCipher`: the AEAD of a session's direct path (see direct_channel.ts). Every frame is
 * sealed with ChaCha20-Poly1305 (RFC 8439, the cipher libp2p's noise uses; the runtime's native
 * implementation behind node:crypto) under the session key; the 12-byte nonce is a direction tag
 * (client → server or server → client) plus a 64-bit frame counter, so each side must open the
 * other's frames in exactly the order they were sealed: a replayed, dropped, reordered, reflected
 * or altered frame fails authentication. Secrets travel as base64url (no padding). node:crypto's
 * native cipher is about twice as fast as a pure-JS ChaCha20-Poly1305 and seals identical bytes
 * (docs/benchmarks.md, "Direct path").
 * @module
 */
import { Buffer } from "node:buffer";
import { createCipheriv, createDecipheriv, createHash } from "node:crypto";
import { WireError } from "../errors.ts";

/** Which side seals with this cipher. */
export type DirectRole = "client" | "server";

const TAG = 16;
const ALGORITHM = "chacha20-poly1305";
/** Bytes a sealed frame adds to its plaintext. */
export const DIRECT_SEAL_OVERHEAD = TAG;
const DIRECTION: Record<DirectRole, number> = { client: 0x63327331, server: 0x73326331 };

/** Bytes as base64url without padding (how tickets and keys travel). */
export function encodeSecret(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64url");
}

/** 32 random bytes as base64url (a ticket or a key). */
export function randomSecret(): string {
  return encodeSecret(crypto.getRandomValues(new Uint8Array(32)));
}

/** Decodes a 32-byte base64url secret; throws BAD_FRAME for anything else. */
export function decodeSecret(s: string, what: string): Uint8Array {
  const b = Buffer.from(s, "base64url");
  if (b.byteLength !== 32 || b.toString("base64url") !== s) {
    throw new WireError("BAD_FRAME", `${what} must be 32 bytes of base64url, got ${s.length} characters`, {
      hint: "the server sent a malformed direct offer; the client uses the libp2p stream instead",
    });
  }
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

export class DirectCipher {
  readonly #key: Uint8Array;
  readonly #sendDir: number;
  readonly #recvDir: number;
  #sent = 0n;
  #received = 0n;

  constructor(key: Uint8Array, role: DirectRole) {
    if (key.byteLength !== 32) throw new RangeError(`a direct key is 32 bytes, got ${key.byteLength}`);
    this.#key = key;
    this.#sendDir = DIRECTION[role];
    this.#recvDir = DIRECTION[role === "client" ? "server" : "client"];
  }

  static #nonce(dir: number, counter: bigint): Uint8Array {
    const iv = new Uint8Array(12);
    const v = new DataView(iv.buffer);
    v.setUint32(0, dir, false);
    v.setBigUint64(4, counter, true);
    return iv;
  }

  /** Ciphertext ‖ tag of the next outgoing frame. */
  seal(plain: Uint8Array): Uint8Array {
    return this.sealInto(plain, 0);
  }

  /**
   * The next outgoing frame sealed into a new buffer after `headroom` free bytes (for a length
   * prefix, saving a copy): `[headroom][ciphertext][tag]`.
   */
  sealInto(plain: Uint8Array, headroom: number): Uint8Array {
    const c = createCipheriv(ALGORITHM, this.#key, DirectCipher.#nonce(this.#sendDir, this.#sent++), {
      authTagLength: TAG,
    });
    const out = new Uint8Array(headroom + plain.byteLength + TAG);
    out.set(c.update(plain), headroom);
    c.final();
    out.set(c.getAuthTag(), headroom + plain.byteLength);
    return out;
  }

  /** Plaintext of the next incoming frame; throws BAD_FRAME when it does not authenticate. */
  open(sealed: Uint8Array): Uint8Array {
    const n = this.#received;
    if (sealed.byteLength < TAG) {
      throw new WireError(
        "BAD_FRAME",
        `a direct frame of ${sealed.byteLength} bytes is shorter than its tag`,
        {
          hint: "the peer does not speak the direct protocol",
        },
      );
    }
    let plain: Uint8Array;
    try {
      const d = createDecipheriv(ALGORITHM, this.#key, DirectCipher.#nonce(this.#recvDir, n), {
        authTagLength: TAG,
      });
      d.setAuthTag(sealed.subarray(sealed.byteLength - TAG));
      const body = d.update(sealed.subarray(0, sealed.byteLength - TAG));
      d.final(); // throws when the tag does not authenticate
      plain = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    } catch {
      throw new WireError("BAD_FRAME", `direct frame ${n} failed authentication`, {
        hint:
          "the frame was altered, replayed or reordered, or sealed under another key; the connection is dropped",
        details: { frame: Number(n) },
      });
    }
    this.#received = n + 1n;
    return plain;
  }
}

/**
 * The SHA-256 of a ticket: what a hashed hello carries (`DIRECT_MAGIC_HASHED`), so that none of the
 * bytes a server sends when it connects for a client (`link_to`) are the client's choice.
 */
export function ticketHash(ticket: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(ticket).digest());
}
