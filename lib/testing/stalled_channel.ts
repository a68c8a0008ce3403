/**
 * `stalledChannel`: a server's end of a stream whose peer sent some frames and then stopped reading
 * (and sending): later reads wait for their signal, and so do writes past the first `freeWrites`
 * and closes, as a real stream's do once the peer's window is full.
 * @module
 */
import type { FrameChannel, WireMessage } from "../wire/mod.ts";

export interface StalledState {
  /** Whether the handler dropped the stream. */
  aborted: boolean;
  /** Writes started (those that completed and those left waiting). */
  writes: number;
}

const untilAborted = (signal?: AbortSignal) =>
  new Promise<never>((_, reject) => {
    if (signal?.aborted) reject(signal.reason);
    signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
  });

/** The channel, fed `frames` in order, whose first `freeWrites` writes complete. */
export function stalledChannel(
  frames: readonly WireMessage[],
  freeWrites = 0,
): { channel: FrameChannel; state: StalledState } {
  const queue = [...frames];
  const state: StalledState = { aborted: false, writes: 0 };
  const channel: FrameChannel = {
    read: (o) => queue.length ? Promise.resolve(queue.shift()!) : untilAborted(o?.signal),
    write: (_m, o) =>
      state.aborted
        ? Promise.reject(new Error("stream aborted"))
        : ++state.writes <= freeWrites
        ? Promise.resolve()
        : untilAborted(o?.signal),
    close: (o) => state.aborted ? Promise.resolve() : untilAborted(o?.signal),
    abort: () => void (state.aborted = true),
    get writable() {
      return !state.aborted;
    },
  };
  return { channel, state };
}
