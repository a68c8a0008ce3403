import assert from "node:assert/strict";
import { testPeer } from "../testing/mod.ts";
import type { LiveInfo } from "../wire/mod.ts";
import { memoryFrameChannelPair } from "./frame_channel.ts";
import { serveInfoStream } from "./info_handler.ts";

const LIVE: LiveInfo = {
  sessions: 2,
  cacheTokensLeft: 100,
  uptimeSeconds: 5,
  tokensProcessed: 7,
  requestCount: 3,
};

Deno.test("info handler: an info_request gets the server's signed record and live figures", async () => {
  const peer = await testPeer();
  const signed = await peer.sign();
  const { a, b } = memoryFrameChannelPair();
  const served = serveInfoStream(b, { own: () => signed, live: () => LIVE });
  await a.write({ type: "info_request" });
  assert.deepEqual(await a.read(), { type: "info", record: signed, live: LIVE });
  assert.equal(await a.read(), null, "then the stream is closed");
  await served;
});

Deno.test("info handler: another frame, or a server that has not announced, gets an error frame", async () => {
  for (
    const [request, own, code] of [
      [{ type: "close" }, () => undefined, "BAD_FRAME"],
      [{ type: "info_request" }, () => undefined, "INTERNAL"],
    ] as const
  ) {
    const { a, b } = memoryFrameChannelPair();
    const served = serveInfoStream(b, { own, live: () => LIVE });
    await a.write(request);
    const reply = await a.read();
    assert.equal(reply?.type, "error");
    assert.equal(reply?.type === "error" && reply.code, code);
    await served;
  }
});
