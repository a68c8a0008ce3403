/**
 * A peer's bytes become frames one read at a time: a flood of tiny or empty frames sent ahead of
 * the reader stays bytes and fails at its first frame, instead of being split into millions of
 * frames at once (which stalled the event loop and could run the process out of memory).
 */
import assert from "node:assert/strict";
import { streamPair } from "@libp2p/utils";
import { WireError } from "../errors.ts";
import { encodeFrame, lengthPrefixed, LengthPrefixedDecoder, MIN_FRAME_BYTES } from "../wire/mod.ts";
import { memoryFrameChannelPair, streamFrameChannel } from "./frame_channel.ts";
import { closeWithin } from "./stream_replies.ts";
import { ByteBudget, FREE_PENDING_BYTES } from "../wire/byte_budget.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";

const MiB = 1024 * 1024;
const INFO = { type: "info_request" } as const;

Deno.test("length prefix: a frame shorter than the least frame is BAD_FRAME, before any body", () => {
  const d = new LengthPrefixedDecoder(1024, MIN_FRAME_BYTES);
  assert.throws(() => d.push(new Uint8Array(MiB)), (e) => e instanceof WireError && e.code === "BAD_FRAME");
  // without a least size an empty frame is a frame (the codec's own users opt in)
  assert.equal(new LengthPrefixedDecoder(1024).push(new Uint8Array(3)).length, 3);
});

Deno.test("frame channel (memory): frames sent ahead are read one by one; a flood of empty ones fails at the first", async () => {
  const { a, b, rawA } = memoryFrameChannelPair();
  await a.write(INFO);
  await a.write(INFO);
  rawA(new Uint8Array(MiB)); // a million one-byte empty frames
  assert.deepEqual(await b.read(), INFO);
  assert.deepEqual(await b.read(), INFO);
  await assert.rejects(b.read(), (e) => e instanceof WireError && e.code === "BAD_FRAME");
});

Deno.test("frame channel (libp2p stream): a valid frame, then 8 MiB of zeros: the frame, then BAD_FRAME", async () => {
  const [outbound, inbound] = await streamPair();
  const channel = streamFrameChannel(inbound);
  const flood = new Uint8Array(8 * MiB);
  const valid = lengthPrefixed(encodeFrame(INFO));
  outbound.send(valid);
  for (let off = 0; off < flood.byteLength; off += 64 * 1024) {
    if (!outbound.send(flood.subarray(off, off + 64 * 1024))) {
      await new Promise((r) => outbound.addEventListener("drain", r, { once: true }));
    }
  }
  assert.deepEqual(await channel.read(), INFO);
  await assert.rejects(channel.read(), (e) => e instanceof WireError && e.code === "BAD_FRAME");
  outbound.abort(new Error("done"));
  inbound.abort(new Error("done"));
});

Deno.test("frame channel (libp2p stream): after discard, what the peer goes on sending is dropped, not buffered", async () => {
  const [outbound, inbound] = await streamPair();
  const channel = streamFrameChannel(inbound);
  const client = streamFrameChannel(outbound);
  await client.write(INFO);
  assert.deepEqual(await channel.read(), INFO);
  // the start of a frame that never completes, as a one-shot handler replies
  const partial = lengthPrefixed(new Uint8Array(4 * MiB)).subarray(0, 3 * MiB);
  outbound.send(partial.subarray(0, MiB));
  await channel.write(INFO);
  await closeWithin(channel, 5_000);
  for (let off = MiB; off < partial.byteLength; off += 64 * 1024) {
    if (!outbound.send(partial.subarray(off, off + 64 * 1024))) {
      await new Promise((r) => outbound.addEventListener("drain", r, { once: true }));
    }
  }
  await new Promise((r) => setTimeout(r, 50));
  // the channel's reader let go of the stream, which drops what comes (before: a reader kept
  // buffering it, up to a frame's size, for as long as the peer kept the stream open)
  assert.equal(inbound.listenerCount("message"), 0);
  assert.equal(inbound.readStatus, "closed");
  assert.equal(inbound.readBufferLength, 0, "nothing held for a finished handler");
  assert.deepEqual(await client.read(), INFO, "the reply went out");
  outbound.abort(new Error("done"));
});

/** Sends `bytes` on `outbound` in 64 KiB pieces, waiting for drains. */
async function sendAll(outbound: Awaited<ReturnType<typeof streamPair>>[0], bytes: Uint8Array) {
  for (let off = 0; off < bytes.byteLength; off += 64 * 1024) {
    if (!outbound.send(bytes.subarray(off, off + 64 * 1024))) {
      await new Promise((r) => outbound.addEventListener("drain", r, { once: true }));
    }
  }
}

/** The first `n` bytes of a frame that never completes. */
const partialFrame = (n: number) => lengthPrefixed(new Uint8Array(8 * MiB)).subarray(0, n);

Deno.test("frame channel (libp2p stream): incomplete frames over many streams are bounded by one budget", async () => {
  const budget = new ByteBudget(3 * MiB);
  const pairs = await Promise.all([streamPair(), streamPair()]);
  const channels = pairs.map(([, inbound], i) =>
    streamFrameChannel(inbound, undefined, undefined, false, budget, `peer${i}`)
  );
  const first = channels[0].read().then(() => "read", (e) => e);
  await sendAll(pairs[0][0], partialFrame(2 * MiB));
  await waitFor(() => budget.held() >= 2 * MiB - FREE_PENDING_BYTES, {
    what: "the first stream's bytes held",
  });
  const second = channels[1].read().then(() => "read", (e) => e);
  void sendAll(pairs[1][0], partialFrame(2 * MiB)).catch(() => {}); // its stream is reset midway
  const refused = await second;
  assert.ok(refused instanceof WireError && refused.code === "BUSY", String(refused));
  assert.match(refused.message, /incomplete frames/);
  assert.ok(budget.held() <= 3 * MiB);
  // the first stream ends: what it held is given back
  pairs[0][0].abort(new Error("gone"));
  await first;
  await waitFor(() => budget.held() === 0, { what: "the budget given back" });
  // complete frames, and the first 64 KiB of one, take nothing for long
  const [out, inb] = await streamPair();
  const ch = streamFrameChannel(inb, undefined, undefined, false, budget);
  const client = streamFrameChannel(out, undefined, undefined, false, budget);
  for (let i = 0; i < 3; i++) await client.write(INFO);
  for (let i = 0; i < 3; i++) assert.deepEqual(await ch.read(), INFO);
  assert.equal(budget.held(), 0);
  out.abort(new Error("done"));
});

Deno.test("frame channel (libp2p stream): one peer's share is bounded; another peer is still served", async () => {
  const budget = new ByteBudget(16 * MiB, 3 * MiB);
  const pairs = await Promise.all([streamPair(), streamPair(), streamPair()]);
  const peers = ["greedy", "greedy", "honest"];
  const channels = pairs.map(([, inbound], i) =>
    streamFrameChannel(inbound, undefined, undefined, false, budget, peers[i])
  );
  const reads = channels.map((c) => c.read().then(() => "read", (e) => e));
  await sendAll(pairs[0][0], partialFrame(2 * MiB));
  await waitFor(() => budget.held("greedy") >= 2 * MiB - FREE_PENDING_BYTES, {
    what: "the first stream held",
  });
  void sendAll(pairs[1][0], partialFrame(2 * MiB)).catch(() => {});
  const refused = await reads[1];
  assert.ok(refused instanceof WireError && refused.code === "BUSY", String(refused));
  await sendAll(pairs[2][0], partialFrame(2 * MiB));
  await waitFor(() => budget.held("honest") >= 2 * MiB - FREE_PENDING_BYTES, {
    what: "the other peer's bytes taken",
  });
  for (const [o] of pairs) o.abort(new Error("done"));
  await Promise.all(reads);
  await waitFor(() => budget.held() === 0, { what: "all given back" });
});

Deno.test("frame channel (libp2p stream): a stream that ends inside a frame gives its bytes back", async () => {
  const budget = new ByteBudget(16 * MiB);
  const [out, inb] = await streamPair();
  const ch = streamFrameChannel(inb, undefined, undefined, false, budget);
  const read = ch.read().then(() => "read", (e) => e);
  await sendAll(out, partialFrame(MiB));
  await out.close();
  const err = await read;
  assert.ok(err instanceof WireError && err.code === "BAD_FRAME", String(err));
  assert.equal(budget.held(), 0, "before: held until the stream closed, or for good when read after");
  inb.abort(new Error("done"));
});
