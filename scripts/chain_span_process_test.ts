import assert from "node:assert/strict";
import { createBlockRuntime } from "../lib/runtime/mod.ts";
import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";
import { spawnChain } from "./chain_span_process.ts";

Deno.test("chain span processes: two spans pushing to each other equal the runtime's whole range, fresh steps reset", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 3 });
  const H = Number(ck.config.hidden_size);
  const local = createBlockRuntime({ model: ck.dir, start: 0, end: 3, weights: "fp32", threads: 1 });
  await local.start();
  const chain = await spawnChain({ model: ck.dir, cuts: [0, 1, 3], threads: 1 });
  try {
    const input = (t: number, seed: number) => ({
      data: Float32Array.from({ length: t * H }, (_, i) => Math.sin(i * 0.37 + seed)),
      shape: [1, t, H] as [number, number, number],
    });
    const steps = [input(5, 1), input(1, 2), input(1, 3)];
    for (let round = 0; round < 2; round++) {
      const session = await local.openSession({ start: 0, end: 3, maxLength: 64, batch: 1 });
      for (const [i, x] of steps.entries()) {
        const want = await session.step(x);
        const got = await chain.step(x, i === 0);
        assert.deepEqual(got.shape, [1, x.shape[1], H]);
        // one session per block either way: cutting the range between processes changes no number
        assert.deepEqual(got.data, want.data, `round ${round} step ${i}`);
      }
      await session.close();
    }
  } finally {
    await chain.stop();
    await local.stop();
    await Deno.remove(ck.dir, { recursive: true });
  }
});

Deno.test("chain span processes: fewer than one span is refused", async () => {
  await assert.rejects(
    () => spawnChain({ model: "/nonexistent", cuts: [0], threads: 1 }),
    /at least one span/,
  );
});
