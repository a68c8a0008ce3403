/**
 * `DirectCipher`: the AEAD of a session's direct path (see direct_channel.ts). Every frame is
 * sealed with ChaCha20-Poly1305 (the cipher libp2p's noise uses; @noble/ciphers, audited, pure
 * JS) under the session key; the 12-byte nonce is a direction tag (client → server or server →
 * client) plus a 64-bit frame counter, so each side must open the other's frames in exactly the
 * order they were sealed: a replayed, dropped, reordered, reflected or altered frame fails
 * authentication. Secrets travel as base64url (no padding).
 *
 * Measured per 4 KiB decode-step frame on the 2-core VM, in a live exchange: about 80–100 µs per
 * seal or open, against 105–127 µs for node:crypto's AES-256-GCM (whose per-call cipher objects
 * cost more than the cipher itself); the round trip of a decode step fell from ~0.83 to ~0.55 ms.
 * @module
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { Buffer } from "node:buffer";
import { WireError } from "../errors.ts";

/** Which side seals with this cipher. */
export type DirectRole = "client" | "server";

const TAG = 16;
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
    return chacha20poly1305(this.#key, DirectCipher.#nonce(this.#sendDir, this.#sent++)).encrypt(plain);
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
      plain = chacha20poly1305(this.#key, DirectCipher.#nonce(this.#recvDir, n)).decrypt(sealed);
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
