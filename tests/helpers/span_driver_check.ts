/**
 * Checks a driver of span processes (the benchmarks' floors) against the runtime: a prefill and
 * two decode steps, twice (the second round starts with a fresh step), must give exactly the
 * runtime's outputs for the same blocks. Test-only.
 * @module
 */
import assert from "node:assert/strict";
import { createBlockRuntime } from "../../lib/runtime/mod.ts";
import type { HiddenStates } from "../../lib/runtime/types.ts";

/** Runs the check of `step` (blocks `[start, end)` of the checkpoint in `model`, hidden size `H`). */
export async function checkSpanDriver(
  model: string,
  range: { start: number; end: number },
  H: number,
  step: (hidden: HiddenStates, fresh: boolean) => Promise<HiddenStates>,
): Promise<void> {
  const local = createBlockRuntime({ model, ...range, weights: "fp32", threads: 1 });
  await local.start();
  try {
    const input = (t: number, seed: number) => ({
      data: Float32Array.from({ length: t * H }, (_, i) => Math.sin(i * 0.37 + seed)),
      shape: [1, t, H] as [number, number, number],
    });
    const steps = [input(5, 1), input(1, 2), input(1, 3)];
    for (let round = 0; round < 2; round++) {
      const session = await local.openSession({ ...range, maxLength: 64, batch: 1 });
      for (const [i, x] of steps.entries()) {
        const want = await session.step(x);
        const got = await step(x, i === 0);
        assert.deepEqual(got.shape, [1, x.shape[1], H]);
        // the same engine, one session per block either way: the same numbers
        assert.deepEqual(got.data, want.data, `round ${round} step ${i}`);
      }
      await session.close();
    }
  } finally {
    await local.stop();
  }
}
