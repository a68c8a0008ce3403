/**
 * How a server's handlers talk back on a stream, each step bounded so that a peer that stops
 * reading (or never sends) holds nothing for long: the first frame read within a deadline, a reply
 * written and the stream closed within `DEFAULT_WRITE_MS` (past it the stream is dropped), reading
 * given up once the reply is out (`FrameChannel.discard`), and the error frame of a refusal.
 * @module
 */
import { timeoutSignal } from "../util/abort.ts";
import type { ProtocolErrorCode, WireMessage } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";

/** How long a reply may take to write, or a stream to close, by default. */
export const DEFAULT_WRITE_MS = 30_000;

/**
 * Writes `message` within `ms` (and while `signal` holds); past it the transport is dropped and the
 * abort's reason thrown. A peer that stops reading can then hold a handler, and the reply it buffers,
 * no longer than that.
 */
export async function writeWithin(
  channel: FrameChannel,
  message: WireMessage,
  ms: number,
  signal?: AbortSignal,
): Promise<void> {
  const t = timeoutSignal(ms, signal);
  try {
    await channel.write(message, { signal: t.signal });
  } catch (err) {
    if (t.signal.aborted) channel.abort();
    throw err;
  } finally {
    t.clear();
  }
}

/**
 * Closes our writing within `ms` (past it the transport is dropped), and stops reading: the
 * handler is done with the stream, and what the peer sends after is dropped. Never throws.
 */
export async function closeWithin(channel: FrameChannel, ms: number): Promise<void> {
  const t = timeoutSignal(ms);
  try {
    await channel.close({ signal: t.signal });
    channel.discard?.();
  } catch {
    channel.abort();
  } finally {
    t.clear();
  }
}

/** Writes an error frame, then closes, both within `writeMs`; never throws. */
export async function replyError(
  channel: FrameChannel,
  code: ProtocolErrorCode,
  message: string,
  extra: { hint?: string; stepId?: number } = {},
  writeMs = 5_000,
): Promise<void> {
  const t = timeoutSignal(writeMs);
  try {
    if (channel.writable) {
      await channel.write({ type: "error", code, message, ...extra }, { signal: t.signal });
    }
    await channel.close({ signal: t.signal });
    channel.discard?.();
  } catch {
    channel.abort();
  } finally {
    t.clear();
  }
}

/** Reads one frame with a timeout; null on clean end. */
export async function readFirst(channel: FrameChannel, ms: number): Promise<WireMessage | null> {
  const t = timeoutSignal(ms);
  try {
    return await channel.read({ signal: t.signal });
  } finally {
    t.clear();
  }
}
