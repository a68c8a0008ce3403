/**
 * `DirectCipher`: the AEAD of a session's direct path (see direct_channel.ts). Every frame is
 * sealed with AES-256-GCM under the session key; the 12-byte nonce is a direction tag (client →
 * server or server → client) plus a 64-bit frame counter, so each side must open the other's
 * frames in exactly the order they were sealed: a replayed, dropped, reordered, reflected or
 * altered frame fails authentication. Secrets travel as base64url (no padding).
 * @module
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import { WireError } from "../errors.ts";

/** Which side seals with this cipher. */
export type DirectRole = "client" | "server";

const TAG = 16;
/** Bytes a sealed frame adds to its plaintext. */
export const DIRECT_SEAL_OVERHEAD = TAG;
const DIRECTION: Record<DirectRole, number> = { client: 0x63327331, server: 0x73326331 };

/** 32 random bytes as base64url (a ticket or a key). */
export function randomSecret(): string {
  return randomBytes(32).toString("base64url");
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
    const c = createCipheriv("aes-256-gcm", this.#key, DirectCipher.#nonce(this.#sendDir, this.#sent++));
    const head = c.update(plain);
    const tail = c.final();
    const tag = c.getAuthTag();
    const out = new Uint8Array(head.byteLength + tail.byteLength + TAG);
    out.set(head);
    out.set(tail, head.byteLength);
    out.set(tag, head.byteLength + tail.byteLength);
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
    const d = createDecipheriv("aes-256-gcm", this.#key, DirectCipher.#nonce(this.#recvDir, n));
    d.setAuthTag(sealed.subarray(sealed.byteLength - TAG));
    const head = d.update(sealed.subarray(0, sealed.byteLength - TAG));
    try {
      const tail = d.final();
      this.#received = n + 1n;
      if (tail.byteLength === 0) return new Uint8Array(head.buffer, head.byteOffset, head.byteLength);
      const out = new Uint8Array(head.byteLength + tail.byteLength);
      out.set(head);
      out.set(tail, head.byteLength);
      return out;
    } catch {
      throw new WireError("BAD_FRAME", `direct frame ${n} failed authentication`, {
        hint:
          "the frame was altered, replayed or reordered, or sealed under another key; the connection is dropped",
        details: { frame: Number(n) },
      });
    }
  }
}
