/**
 * Server side of `/plumise/info/1.0.0`: one `info_request` frame → one `info` (this server's
 * signed record and its live figures), or an error frame; then the stream is closed.
 * @module
 */
import { SwarmError } from "../errors.ts";
import { type LiveInfo, protocolMessage, type SignedRecordWire, toProtocolCode } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { closeWithin, DEFAULT_WRITE_MS, readFirst, replyError, writeWithin } from "./stream_replies.ts";

export interface InfoSource {
  /** This server's signed record as its table holds it (undefined before it announced). */
  own(): SignedRecordWire | undefined;
  /** What the server reports about itself right now. */
  live(): LiveInfo;
  /** How long to wait for the request frame (default 10 s). */
  readonly firstFrameMs?: number;
}

/** Serves one info request. Never throws. */
export async function serveInfoStream(channel: FrameChannel, source: InfoSource): Promise<void> {
  try {
    const msg = await readFirst(channel, source.firstFrameMs ?? 10_000);
    if (msg === null) return await closeWithin(channel, DEFAULT_WRITE_MS);
    if (msg.type !== "info_request") {
      throw new SwarmError("BAD_FRAME", `expected info_request, got ${msg.type}`);
    }
    const own = source.own();
    if (!own) throw new SwarmError("INTERNAL", "this server has not announced yet");
    await writeWithin(channel, { type: "info", record: own, live: source.live() }, DEFAULT_WRITE_MS);
    await closeWithin(channel, DEFAULT_WRITE_MS);
  } catch (err) {
    await replyError(channel, toProtocolCode(err), protocolMessage(err));
  }
}
