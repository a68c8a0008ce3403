import assert from "node:assert/strict";
import { fakeHidden } from "../testing/mod.ts";
import { tensor } from "../wire/mod.ts";
import { memoryFrameChannelPair } from "./frame_channel.ts";
import { InferenceStream } from "./inference_stream.ts";

Deno.test("inference stream: a server naming thousands of lost links is remembered up to a bound", async () => {
  const { a, b } = memoryFrameChannelPair();
  const stream = new InferenceStream(a, "f32", 1024, { openMs: 5000, stepMs: 5000, forwardMs: 5000 });
  const x = fakeHidden(1, 1, 4);
  const stepping = stream.step(x);
  const step = await b.read();
  assert.equal(step?.type, "step");
  for (let link = 0; link < 5000; link++) await b.write({ type: "link_lost", link });
  await b.write({ type: "result", stepId: 0, hidden: tensor(x.data, x.shape, "f32"), computeMs: 1 });
  await stepping;
  assert.equal(stream.linkLost(4999), true);
  assert.equal(stream.linkLost(0), false, "the oldest were forgotten (before: all 5000 kept)");
  await stream.close();
});
