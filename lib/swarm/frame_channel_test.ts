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
import { ByteBudget } from "./byte_budget.ts";
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

Deno.test("frame channel (libp2p stream): incomplete frames over many streams are bounded by one budget", async () => {
  const budget = new ByteBudget(3 * MiB);
  const partial = lengthPrefixed(new Uint8Array(8 * MiB)).subarray(0, 2 * MiB); // a frame never finished
  const pairs = await Promise.all([streamPair(), streamPair()]);
  const channels = pairs.map(([, inbound]) =>
    streamFrameChannel(inbound, undefined, undefined, false, budget)
  );
  const send = async (outbound: (typeof pairs)[0][0], bytes: Uint8Array) => {
    for (let off = 0; off < bytes.byteLength; off += 64 * 1024) {
      if (!outbound.send(bytes.subarray(off, off + 64 * 1024))) {
        await new Promise((r) => outbound.addEventListener("drain", r, { once: true }));
      }
    }
  };
  const first = channels[0].read().then(() => "read", (e) => e);
  await send(pairs[0][0], partial);
  await waitFor(() => budget.held >= 2 * MiB, { what: "the first stream's 2 MiB held" });
  const second = channels[1].read().then(() => "read", (e) => e);
  void send(pairs[1][0], partial).catch(() => {}); // its stream is dropped midway: never awaited
  const refused = await second;
  assert.ok(refused instanceof WireError && refused.code === "BUSY", String(refused));
  assert.match(refused.message, /incomplete frames/);
  assert.ok(budget.held <= 3 * MiB);
  // the first stream ends: what it held is given back
  pairs[0][0].abort(new Error("gone"));
  await first;
  await waitFor(() => budget.held === 0, { what: "the budget given back" });
  // complete frames take nothing for long
  const [out, inb] = await streamPair();
  const ch = streamFrameChannel(inb, undefined, undefined, false, budget);
  const client = streamFrameChannel(out, undefined, undefined, false, budget);
  for (let i = 0; i < 3; i++) await client.write(INFO);
  for (let i = 0; i < 3; i++) assert.deepEqual(await ch.read(), INFO);
  assert.equal(budget.held, 0);
  out.abort(new Error("done"));
});
