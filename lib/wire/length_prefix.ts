/**
 * The length prefix in front of every frame: an unsigned LEB128 varint (libp2p's `lp`
 * framing, so `lpStream` from @libp2p/utils reads it). Pure helpers; `LengthPrefixedDecoder`
 * splits a byte stream into frames and rejects a declared length above the cap before
 * buffering the body.
 * @module
 */
import { WireError } from "../errors.ts";

/** Bytes needed to encode `n` as a varint. */
export function varintLength(n: number): number {
  let len = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Encodes a non-negative safe integer as an unsigned varint. */
export function encodeVarint(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`varint must be a safe integer ≥ 0, got ${n}`);
  const out = new Uint8Array(varintLength(n));
  let i = 0;
  while (n >= 128) {
    out[i++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[i] = n;
  return out;
}

/** Prefixes a frame body with its varint length. */
export function lengthPrefixed(body: Uint8Array): Uint8Array {
  const prefix = encodeVarint(body.byteLength);
  const out = new Uint8Array(prefix.byteLength + body.byteLength);
  out.set(prefix);
  out.set(body, prefix.byteLength);
  return out;
}

/**
 * Incremental decoder: push bytes, get complete frame bodies. Throws `TOO_LARGE` for a declared
 * length above `maxFrameBytes` and `BAD_FRAME` for one below `minFrameBytes`: a flood of empty
 * frames is one byte each, so a reader that takes its frames one by one (`pushOne`) stops at the
 * first instead of building millions of them.
 */
export class LengthPrefixedDecoder {
  readonly #max: number;
  readonly #min: number;
  readonly #maxPrefix: number;
  #chunks: Uint8Array[] = [];
  #buffered = 0;

  constructor(maxFrameBytes: number, minFrameBytes = 0) {
    this.#max = maxFrameBytes;
    this.#min = minFrameBytes;
    this.#maxPrefix = varintLength(maxFrameBytes);
  }

  /** Bytes held but not yet returned as a frame. */
  get buffered(): number {
    return this.#buffered;
  }

  /**
   * Adds bytes; returns every frame body completed by them. A body that lies within one pushed
   * chunk is a view into it (no copy), so callers hand over buffers they no longer write to.
   */
  push(bytes: Uint8Array): Uint8Array[] {
    this.append(bytes);
    const out: Uint8Array[] = [];
    for (;;) {
      const len = this.#peekLength();
      if (len === undefined) break;
      if (this.#buffered < len.prefix + len.body) break;
      const all = this.#take(len.prefix + len.body);
      out.push(all.subarray(len.prefix));
    }
    return out;
  }

  /** Adds bytes; returns the first frame body completed (any later ones stay held), or undefined. */
  pushOne(bytes: Uint8Array): Uint8Array | undefined {
    this.append(bytes);
    return this.next();
  }

  /** Takes the next complete frame body held, or undefined (the bytes of an incomplete one stay). */
  next(): Uint8Array | undefined {
    const len = this.#peekLength();
    if (len === undefined || this.#buffered < len.prefix + len.body) return undefined;
    return this.#take(len.prefix + len.body).subarray(len.prefix);
  }

  /** Adds bytes without taking a frame (`next` takes them). */
  append(bytes: Uint8Array): void {
    if (bytes.byteLength) {
      this.#chunks.push(bytes);
      this.#buffered += bytes.byteLength;
    }
  }

  /** Removes and returns every byte held (for whoever reads the connection next). */
  drain(): Uint8Array {
    const out = new Uint8Array(this.#buffered);
    let off = 0;
    for (const c of this.#chunks) {
      out.set(c, off);
      off += c.byteLength;
    }
    this.#chunks = [];
    this.#buffered = 0;
    return out;
  }

  #byteAt(i: number): number | undefined {
    for (const c of this.#chunks) {
      if (i < c.byteLength) return c[i];
      i -= c.byteLength;
    }
    return undefined;
  }

  #peekLength(): { prefix: number; body: number } | undefined {
    let value = 0;
    let mul = 1;
    for (let i = 0;; i++) {
      const b = this.#byteAt(i);
      if (b === undefined) return undefined;
      if (i >= this.#maxPrefix) {
        throw new WireError("TOO_LARGE", `frame length prefix longer than ${this.#maxPrefix} bytes`, {
          hint: "the peer declared a frame larger than the cap",
        });
      }
      value += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        if (value > this.#max) {
          throw new WireError("TOO_LARGE", `frame of ${value} bytes exceeds the cap of ${this.#max} bytes`, {
            hint: "send smaller chunks or raise the frame cap on both sides",
            details: { size: value, cap: this.#max },
          });
        }
        if (value < this.#min) {
          throw new WireError(
            "BAD_FRAME",
            `frame of ${value} bytes is shorter than the least frame, ${this.#min} bytes`,
            {
              hint: "the peer sent a malformed frame; check that both sides speak the same protocol version",
              details: { size: value, least: this.#min },
            },
          );
        }
        return { prefix: i + 1, body: value };
      }
    }
  }

  #take(n: number): Uint8Array {
    const first = this.#chunks[0];
    if (first.byteLength >= n) {
      // the whole frame is in the first chunk (the usual case): a view, no copy
      if (first.byteLength === n) this.#chunks.shift();
      else this.#chunks[0] = first.subarray(n);
      this.#buffered -= n;
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const c = this.#chunks[0];
      const k = Math.min(c.byteLength, n - off);
      out.set(c.subarray(0, k), off);
      off += k;
      if (k === c.byteLength) this.#chunks.shift();
      else this.#chunks[0] = c.subarray(k);
    }
    this.#buffered -= n;
    return out;
  }
}
