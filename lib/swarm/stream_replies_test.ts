import assert from "node:assert/strict";
import { TimeoutError } from "../errors.ts";
import { stalledChannel } from "../testing/mod.ts";
import { type FrameChannel, memoryFrameChannelPair } from "./frame_channel.ts";
import { closeWithin, readFirst, replyError, writeWithin } from "./stream_replies.ts";

const INFO = { type: "info_request" } as const;

/** `ch` with its `discard` calls counted. */
function counted(ch: FrameChannel) {
  const c = { discards: 0, channel: { ...ch, discard: () => void c.discards++ } as FrameChannel };
  // keep the getter live (the spread copied its value)
  Object.defineProperty(c.channel, "writable", { get: () => ch.writable });
  return c;
}

Deno.test("writeWithin: a peer that never reads: the stream is dropped after ms and the timeout thrown", async () => {
  const { channel, state } = stalledChannel([]);
  await assert.rejects(writeWithin(channel, INFO, 20), TimeoutError);
  assert.ok(state.aborted);
  // a write that goes through leaves the stream alone
  const { a, b } = memoryFrameChannelPair();
  await writeWithin(a, INFO, 1000);
  assert.deepEqual(await b.read(), INFO);
});

Deno.test("closeWithin: closes and stops reading; a close that hangs drops the stream instead", async () => {
  const { a, b } = memoryFrameChannelPair();
  const c = counted(a);
  await closeWithin(c.channel, 1000);
  assert.equal(await b.read(), null, "the peer sees the end");
  assert.equal(c.discards, 1);
  const { channel, state } = stalledChannel([]);
  await closeWithin(channel, 20); // never throws
  assert.ok(state.aborted);
});

Deno.test("replyError: the error frame, then the end; nothing sent to a stream that cannot be written", async () => {
  const { a, b } = memoryFrameChannelPair();
  const c = counted(a);
  await replyError(c.channel, "BUSY", "full", { hint: "later" });
  assert.deepEqual(await b.read(), { type: "error", code: "BUSY", message: "full", hint: "later" });
  assert.equal(await b.read(), null);
  assert.equal(c.discards, 1);
  const { channel, state } = stalledChannel([]);
  await replyError(channel, "BUSY", "full", {}, 20);
  assert.ok(state.aborted, "a reply nobody reads is given up after writeMs");
});

Deno.test("readFirst: the first frame, null at a clean end, a timeout when nothing comes", async () => {
  const { a, b, endA } = memoryFrameChannelPair();
  await a.write(INFO);
  assert.deepEqual(await readFirst(b, 1000), INFO);
  endA();
  assert.equal(await readFirst(b, 1000), null);
  const { channel } = stalledChannel([]);
  await assert.rejects(readFirst(channel, 20), TimeoutError);
});
