/**
 * The request/reply exchange of the protocol client (swarm_client_transport.ts) and of its
 * inference streams (inference_stream.ts): how a stream is opened, the default timeouts, and how a
 * server's error frame or an unexpected reply becomes a `SwarmError`.
 * @module
 */
import { isErrorCode, SwarmError } from "../errors.ts";
import { type AbortOptions, timeoutSignal } from "../util/abort.ts";
import type { MessageType, WireMessage } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";

/** Opens a new stream for a protocol (libp2p dial or an in-memory pair in tests). */
export type OpenChannel = (protocol: string, options: { signal: AbortSignal }) => Promise<FrameChannel>;

export interface ClientTimeouts {
  /** Opening a stream + the first reply (default 15 s). */
  openMs?: number;
  /** One inference step (default 60 s). */
  stepMs?: number;
  /** One forward request (default 300 s). */
  forwardMs?: number;
}

/** A server's error frame, or an unexpected reply. */
export function remoteError(msg: WireMessage | null, expected: MessageType): SwarmError {
  if (msg === null) {
    return new SwarmError("STREAM_CLOSED", `server closed the stream before replying with ${expected}`, {
      hint: "the server failed or restarted; route to another server",
    });
  }
  if (msg.type === "error") {
    // a code this version does not know (a newer peer's) is kept in details, under REMOTE_ERROR
    const code = msg.code;
    return new SwarmError(
      isErrorCode(code) ? code : "REMOTE_ERROR",
      `server replied ${code}: ${msg.message}`,
      {
        hint: msg.hint || "route to another server",
        details: { remote: true, stepId: msg.stepId, ...(isErrorCode(code) ? {} : { remoteCode: code }) },
      },
    );
  }
  return new SwarmError("BAD_FRAME", `server replied ${msg.type}, expected ${expected}`, {
    hint: "the server speaks another protocol version",
  });
}

/** Writes `request` (when given) and reads one reply of type `expected` within `ms`; any other reply throws. */
export async function exchange<T extends MessageType>(
  channel: FrameChannel,
  request: WireMessage | undefined,
  expected: T,
  ms: number,
  { signal }: AbortOptions = {},
): Promise<Extract<WireMessage, { type: T }>> {
  const t = timeoutSignal(ms, signal);
  try {
    if (request) await channel.write(request, { signal: t.signal });
    const reply = await channel.read({ signal: t.signal });
    if (reply?.type !== expected) throw remoteError(reply, expected);
    return reply as Extract<WireMessage, { type: T }>;
  } catch (err) {
    channel.abort(err instanceof Error ? err : undefined);
    throw err;
  } finally {
    t.clear();
  }
}

/** The timeouts with their defaults filled in. */
export const clientTimeouts = (t: ClientTimeouts = {}): Required<ClientTimeouts> => ({
  openMs: t.openMs ?? 15_000,
  stepMs: t.stepMs ?? 60_000,
  forwardMs: t.forwardMs ?? 300_000,
});
