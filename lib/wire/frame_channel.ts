/**
 * `FrameChannel`: whole validated messages over some byte transport — a libp2p stream
 * (lib/swarm/frame_channel.ts), a direct connection (direct_channel.ts), or an in-memory pair.
 * @module
 */
import type { WireMessage } from "./protocol_messages.ts";

export interface FrameChannel {
  /**
   * The next message; `null` when the other side ended its writing cleanly at a frame
   * boundary. Throws `WireError` (`BAD_FRAME`, `TOO_LARGE`) for a bad frame, or the transport's error.
   */
  read(options?: { signal?: AbortSignal }): Promise<WireMessage | null>;
  write(message: WireMessage, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Ends our writing gracefully (pending bytes are flushed). When `signal` aborts first (a peer
   * that stops reading never lets them flush) the transport is dropped instead.
   */
  close(options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Stops reading for good, where the transport can: what is buffered is freed and what the peer
   * sends from now on is dropped. A server calls it once its reply is out, so a peer that goes on
   * sending after a one-shot request holds no memory.
   */
  discard?(): void;
  /** Drops the transport at once. */
  abort(err?: Error): void;
  /** Whether the channel can still be written to. */
  readonly writable: boolean;
  /**
   * The IP or DNS name the peer was reached at, when it was dialed directly (not relayed);
   * where a direct path to it can be tried.
   */
  readonly remoteHost?: string;
  /** The peer was reached through a relay (a `/p2p-circuit` connection). */
  readonly relayed?: boolean;
}
