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
    const cycle = async (i: number) => {
      const s = await rt.openSession({ start: 0, end: 2, maxLength: 16, batch: 1 + (i % 2) });
      await s.step(fakeHidden(s.batch, 3, H, i));
      await s.step(fakeHidden(s.batch, 1, H, i + 1));
      await s.step(fakeHidden(s.batch, 2, H, i + 2), { startFromPosition: 2 }); // rows, for batch 2
      if (i % 5 === 0) {
        await rt.forward(0, 2, fakeHidden(1, 4, H, i));
      }
      await s.close();
    };
    // The first cycles create what is kept for good: the memory info, and one pass scratch (5 tensors)
    // per row count that the steps use (kv_batch_step.ts).
    await cycle(0);
    await cycle(1);
    const { heapBytes: _, ...base } = await rt.engineStats();
    const kept = base.native?.value ?? -1;
    assert.deepEqual(base, {
      sessions: 0,
      // per block: the joined graph, projection, attention (pool and caller-only), output; one
      // packed-weights container for all of them
      native: { env: 1, options: 0, session: 2 * 5, value: kept, memory: 1, container: 1 },
    });
    assert.ok(kept > 0 && kept % 5 === 0, `kept scratches: ${kept} tensors`);
    for (let i = 2; i < 40; i++) await cycle(i);
    const { heapBytes: __, ...after } = await rt.engineStats();
    assert.deepEqual(after, base);
  } finally {
    await rt.stop();
  }
});
