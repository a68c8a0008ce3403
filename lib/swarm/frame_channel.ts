/**
 * `FrameChannel`: whole validated messages over a byte stream. The libp2p flavour wraps a
 * libp2p `Stream` with `byteStream` (never `for await`, see the Deno quirks) and splits it
 * with the wire length-prefix decoder, which rejects a declared length above the cap before
 * buffering the body. An in-memory pair (through the same codecs) serves unit tests.
 * @module
 */
import type { Stream } from "@libp2p/interface";
import { byteStream } from "@libp2p/utils";
import { WireError } from "../errors.ts";
import {
  decodeFrame,
  DEFAULT_WIRE_LIMITS,
  encodeFrame,
  lengthPrefixed,
  LengthPrefixedDecoder,
  MIN_FRAME_BYTES,
  varintLength,
  type WireLimits,
} from "../wire/mod.ts";
import type { FrameChannel, WireMessage } from "../wire/mod.ts";
import { BudgetShare, type ByteBudget, PENDING_FRAME_BUDGET } from "../wire/byte_budget.ts";

export type { FrameChannel };

/**
 * Wraps a libp2p stream (`remoteHost`, `relayed`: see `FrameChannel`). The bytes of a frame read
 * but not complete, beyond `FREE_PENDING_BYTES`, are taken from `budget` (process-wide by default)
 * under `peer`'s share, and given back as frames complete, a read fails or the stream ends: past
 * either bound the stream is reset and the read throws `BUSY`.
 */
export function streamFrameChannel(
  stream: Stream,
  limits: WireLimits = DEFAULT_WIRE_LIMITS,
  remoteHost?: string,
  relayed = false,
  budget: ByteBudget = PENDING_FRAME_BUDGET,
  /** Whose share of the budget the stream takes from (the remote peer's id). */
  peer = "",
): FrameChannel {
  const bytes = byteStream(stream, {
    maxBufferSize: limits.maxFrameBytes + varintLength(limits.maxFrameBytes) + 65536,
  });
  const decoder = new LengthPrefixedDecoder(limits.maxFrameBytes, MIN_FRAME_BYTES);
  /** What the decoder holds, taken from the budget (beyond the free allowance). */
  const share = new BudgetShare(budget, peer);
  const giveBack = () => share.release();
  /** False when the budget refuses what the decoder holds now. */
  const account = () => share.hold(decoder.buffered);
  stream.addEventListener("close", giveBack, { once: true });
  const next = async (options?: { signal?: AbortSignal }): Promise<WireMessage | null> => {
    // one frame at a time: what a peer sent ahead stays bytes until it is read (never an array
    // of frames, so a flood of tiny ones costs their bytes, then fails at the first bad one)
    for (;;) {
      const body = decoder.next();
      if (body) {
        account();
        return decodeFrame(body, limits);
      }
      const chunk = await bytes.read({ signal: options?.signal });
      if (chunk === null) {
        if (decoder.buffered > 0) {
          throw new WireError(
            "BAD_FRAME",
            `stream ended inside a frame (${decoder.buffered} bytes pending)`,
            {
              hint: "the peer sent a truncated frame",
            },
          );
        }
        return null;
      }
      decoder.append(chunk.subarray());
      if (!account()) {
        const err = new WireError(
          "BUSY",
          `${budget.held()} bytes of incomplete frames held (${budget.held(peer)} for this peer), the most`,
          { hint: "the stream was reset; send the frame again later, or to another server" },
        );
        stream.abort(err); // the peer sees a reset
        throw err;
      }
    }
  };
  return {
    async read(options) {
      try {
        const m = await next(options);
        if (m === null) giveBack();
        return m;
      } catch (err) {
        // a read that fails ends the channel's use (a truncated or refused frame, a reset, a
        // caller that gave up): nothing it held stays taken
        giveBack();
        throw err;
      }
    },
    async write(message, options) {
      await bytes.write(lengthPrefixed(encodeFrame(message, limits)), { signal: options?.signal });
    },
    async close(options) {
      try {
        await stream.close({ signal: options?.signal });
      } catch {
        stream.abort(new Error("close failed"));
      }
    },
    discard() {
      giveBack();
      try {
        bytes.unwrap(); // hands what it buffered back to the stream, which closeRead drops
      } catch {
        // unwrapped already, or the stream is closed for reading
      }
      stream.closeRead().catch(() => {});
    },
    abort(err) {
      giveBack();
      stream.abort(err ?? new Error("aborted"));
    },
    get writable() {
      return stream.writeStatus === "writable" && stream.status === "open";
    },
    remoteHost,
    ...(relayed ? { relayed } : {}),
  };
}

/**
 * Two connected in-memory channels (a ↔ b) that pass every message through the real frame
 * codecs; for unit tests of handlers and clients. `raw` writes raw bytes into a's outgoing
 * direction (fuzzing the reader of b).
 */
export function memoryFrameChannelPair(limits: WireLimits = DEFAULT_WIRE_LIMITS): {
  a: FrameChannel;
  b: FrameChannel;
  rawA: (bytes: Uint8Array) => void;
  endA: () => void;
} {
  class Pipe {
    chunks: Uint8Array[] = [];
    ended = false;
    error: Error | undefined;
    waiter: (() => void) | undefined;
    push(c: Uint8Array) {
      if (this.ended) throw new Error("write after end");
      this.chunks.push(c);
      this.waiter?.();
    }
    end(err?: Error) {
      this.ended = true;
      this.error ??= err;
      this.waiter?.();
    }
  }
  const ab = new Pipe();
  const ba = new Pipe();
  const make = (inbound: Pipe, outbound: Pipe): FrameChannel => {
    const decoder = new LengthPrefixedDecoder(limits.maxFrameBytes, MIN_FRAME_BYTES);
    return {
      async read(options) {
        for (;;) {
          const body = decoder.next();
          if (body) return decodeFrame(body, limits);
          const c = inbound.chunks.shift();
          if (c) {
            decoder.append(c);
            continue;
          }
          if (inbound.error) throw inbound.error;
          if (inbound.ended) {
            if (decoder.buffered > 0) {
              throw new WireError(
                "BAD_FRAME",
                `stream ended inside a frame (${decoder.buffered} bytes pending)`,
              );
            }
            return null;
          }
          await new Promise<void>((resolve, reject) => {
            const onAbort = () => reject(options?.signal?.reason);
            options?.signal?.addEventListener("abort", onAbort, { once: true });
            inbound.waiter = () => {
              inbound.waiter = undefined;
              options?.signal?.removeEventListener("abort", onAbort);
              resolve();
            };
          });
        }
      },
      write(message) {
        outbound.push(lengthPrefixed(encodeFrame(message, limits)));
        return Promise.resolve();
      },
      close() {
        if (!outbound.ended) outbound.end();
        return Promise.resolve();
      },
      abort(err) {
        const e = err ?? new Error("aborted");
        if (!outbound.ended) outbound.end(e);
        if (!inbound.ended) inbound.end(e);
      },
      get writable() {
        return !outbound.ended;
      },
    };
  };
  return { a: make(ba, ab), b: make(ab, ba), rawA: (bytes) => ab.push(bytes), endA: () => ab.end() };
}
