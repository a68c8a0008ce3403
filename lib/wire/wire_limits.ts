/**
 * Limits shared by every codec in wire/. Frames are checked against them before any
 * allocation that depends on a value read from the wire.
 * @module
 */

/** Default cap of one frame (bytes after the length prefix): 64 MiB. */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;
/** Cap of a frame's JSON header: 4 MiB (a table reply of ~4000 records fits). */
export const DEFAULT_MAX_HEADER_BYTES = 4 * 1024 * 1024;
/** Largest block index / span end accepted anywhere. */
export const MAX_BLOCK = 100_000;
/**
 * Shape of a frame's JSON header, checked before it is parsed (json_shape.ts): the messages nest
 * 3 levels deep and a full table reply holds about 12 000 values, so these leave room for new
 * fields while keeping what a hostile header can make the parser build small.
 */
export const HEADER_SHAPE: Readonly<{ maxDepth: number; maxValues: number }> = Object.freeze({
  maxDepth: 16,
  maxValues: 65_536,
});
/** Shape of a record's JSON payload (at most 32 addrs and 64 nextPings). */
export const RECORD_SHAPE: Readonly<{ maxDepth: number; maxValues: number }> = Object.freeze({
  maxDepth: 8,
  maxValues: 1024,
});
/** Largest tensor rank accepted. */
export const MAX_TENSOR_RANK = 4;

export interface WireLimits {
  /** Largest frame body (after the length prefix) in bytes. */
  readonly maxFrameBytes: number;
  /** Largest JSON header in bytes (≤ maxFrameBytes). */
  readonly maxHeaderBytes: number;
}

export const DEFAULT_WIRE_LIMITS: WireLimits = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxHeaderBytes: DEFAULT_MAX_HEADER_BYTES,
});

/** Limits for a frame cap, with the header cap clipped to it. */
export function wireLimits(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): WireLimits {
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes < 1024) {
    throw new RangeError(`maxFrameBytes must be an integer ≥ 1024, got ${maxFrameBytes}`);
  }
  return Object.freeze({ maxFrameBytes, maxHeaderBytes: Math.min(DEFAULT_MAX_HEADER_BYTES, maxFrameBytes) });
}
