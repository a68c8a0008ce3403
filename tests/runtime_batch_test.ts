/**
 * Continuous batching through the runtime Worker: concurrent sessions (one with a prompt long
 * enough to run in chunks) get the numbers each gets alone, and the Worker reports batches of
 * several sessions.
 */
import assert from "node:assert/strict";
import { createBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import type { BlockRuntime, HiddenStates, InferenceSession } from "../lib/runtime/types.ts";
import type { BatchEvent } from "../lib/runtime/worker_protocol.ts";
import { makeBloomCheckpoint, makeLlamaCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { maxAbsDiff } from "./helpers/runtime_reference.ts";

/** Session i's steps: a prompt (session 0's is 100 tokens: two chunks), then decode steps; session 2 closes early. */
function plan(i: number): number[] {
  const prompt = i === 0 ? 100 : 3 + i;
  return [prompt, ...Array(i === 2 ? 2 : 6).fill(1)];
}

/** Runs session i's plan on `s`, returning each step's output. */
async function run(s: InferenceSession, i: number, H: number): Promise<HiddenStates[]> {
  const out: HiddenStates[] = [];
  for (const [k, t] of plan(i).entries()) {
    out.push(await s.step(fakeHidden(1, t, H, 10 * i + k)));
  }
  return out;
}

for (const family of ["bloom", "llama"] as const) {
  Deno.test(`runtime batching (${family}): 6 concurrent sessions, a chunked prompt among them, each as alone`, async () => {
    const ck = family === "bloom" ? await makeBloomCheckpoint() : await makeLlamaCheckpoint();
    const L = (ck.config.n_layer ?? ck.config.num_hidden_layers) as number;
    const events: BatchEvent[] = [];
    const rt: BlockRuntime = createBlockRuntime({
      model: ck.dir,
      start: 0,
      end: L,
      weights: "fp32",
      cacheTokens: 100_000,
      maxLength: 128,
      onBatch: (e) => events.push(e),
    });
    await rt.start();
    try {
      const H = rt.info().hiddenSize;
      const open = () => rt.openSession({ start: 0, end: L, maxLength: 120, batch: 1 });
      const alone: HiddenStates[][] = [];
      for (let i = 0; i < 6; i++) {
        const s = await open();
        alone.push(await run(s, i, H));
        await s.close();
      }
      const ss = await Promise.all(Array.from({ length: 6 }, open));
      const together = await Promise.all(ss.map(async (s, i) => {
        const out = await run(s, i, H);
        if (i === 2) await s.close(); // while the others still step
        return out;
      }));
      for (let i = 0; i < 6; i++) {
        assert.equal(together[i].length, alone[i].length);
        together[i].forEach((y, k) => {
          assert.deepEqual(y.shape, alone[i][k].shape);
          const d = maxAbsDiff(y.data, alone[i][k].data);
          assert.ok(d <= 1e-5, `session ${i} step ${k}: ${d}`);
        });
      }
      for (const s of ss) await s.close();
      // the Worker reports at most every 200 ms: wait for the last report
      for (let k = 0; k < 50 && events.reduce((a, e) => a + e.sizes.length, 0) === 0; k++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 250));
      const sizes = events.flatMap((e) => e.sizes), waits = events.flatMap((e) => e.waitsMs);
      assert.ok(Math.max(...sizes) > 1, `some batch held several sessions: ${sizes}`);
      const steps = [...Array(6).keys()].reduce((a, i) => a + plan(i).length, 0);
      assert.equal(waits.length, 2 * steps, "one queue wait per step, alone and together");
      assert.ok(waits.every((w) => w >= 0));
      // between batches of several sessions the Worker waited for the ones it had last (8 ms at most)
      const w = events.reduce((a, e) => ({
        filled: a.filled + e.windows!.filled,
        inVain: a.inVain + e.windows!.inVain,
        ms: a.ms + e.windows!.ms,
      }), { filled: 0, inVain: 0, ms: 0 });
      assert.ok(w.filled + w.inVain > 0, `some waits: ${JSON.stringify(w)}`);
      // 8 ms each at most, plus what a busy machine adds to each timer
      assert.ok(w.ms >= 0 && w.ms <= (w.filled + w.inVain) * 28, `waited ${w.ms} ms`);
    } finally {
      await rt.stop();
    }
  });
}
