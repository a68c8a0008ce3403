import assert from "node:assert/strict";
import { fakeHidden } from "../lib/testing/mod.ts";
import { OnnxBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";

Deno.test("runtime: sessions opened, stepped, rolled back and closed leave no native object behind in the Worker", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  const rt = new OnnxBlockRuntime({ model: ck.dir, start: 0, end: 2, weights: "int8", maxLength: 32 });
  await rt.start();
  try {
    const H = rt.info().hiddenSize;
    await rt.forward(0, 2, fakeHidden(1, 2, H, 0)); // creates the engine's memory info, kept for good
    const { heapBytes: _, ...base } = await rt.engineStats();
    assert.deepEqual(base, { sessions: 0, native: { env: 1, options: 0, session: 2, value: 0, memory: 1 } });
    for (let i = 0; i < 40; i++) {
      const s = await rt.openSession({ start: 0, end: 2, maxLength: 16, batch: 1 + (i % 2) });
      await s.step(fakeHidden(s.batch, 3, H, i));
      await s.step(fakeHidden(s.batch, 1, H, i + 1));
      await s.step(fakeHidden(s.batch, 2, H, i + 2), { startFromPosition: 2 }); // rows, for batch 2
      if (i % 5 === 0) {
        await rt.forward(0, 2, fakeHidden(1, 4, H, i));
      }
      await s.close();
    }
    const { heapBytes: __, ...after } = await rt.engineStats();
    assert.deepEqual(after, base);
  } finally {
    await rt.stop();
  }
});
