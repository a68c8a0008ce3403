import assert from "node:assert/strict";
import { createBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import type { BlockRuntime, HiddenStates } from "../lib/runtime/types.ts";
import {
  type Checkpoint,
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
  makeQwen3Checkpoint,
} from "./helpers/checkpoint_fixture.ts";
import { fromSeq, maxAbsDiff, referenceSpan, toSeq } from "./helpers/runtime_reference.ts";
import { concat, slice } from "./helpers/hidden_tokens.ts";

function reference(ck: Checkpoint, start: number, end: number, x: HiddenStates): Float32Array {
  const [b, t, h] = x.shape;
  return fromSeq(referenceSpan(ck, start, end, toSeq(x.data, b, t, h)));
}

const TOL = 1e-4;

async function withRuntime(
  ck: Checkpoint,
  weights: "fp32" | "int8",
  fn: (rt: BlockRuntime) => Promise<void>,
): Promise<void> {
  const L = ck.config.model_type === "bloom"
    ? ck.config.n_layer as number
    : ck.config.num_hidden_layers as number;
  const rt = createBlockRuntime({
    model: ck.dir,
    start: 0,
    end: L,
    weights,
    cacheTokens: 100_000,
    maxLength: 64,
  });
  await rt.start();
  try {
    await fn(rt);
  } finally {
    await rt.stop();
  }
}

type Family = "bloom" | "llama" | "qwen3";
/** Qwen3: hidden 48, 4 × 16 query heads (head_dim ≠ hidden / heads), 2 KV heads, 3 shards. */
const make = (family: Family): Promise<Checkpoint> =>
  family === "bloom"
    ? makeBloomCheckpoint()
    : family === "llama"
    ? makeLlamaCheckpoint()
    : makeQwen3Checkpoint({ shards: 3 });

for (const family of ["bloom", "llama", "qwen3"] as const) {
  Deno.test(`runtime parity (${family}, fp32): prefill + decode, batch 1 and 2, cached = full, span = blocks, rollback, hypoIds`, async () => {
    const ck = await make(family);
    const L = ck.config.model_type === "bloom"
      ? ck.config.n_layer as number
      : ck.config.num_hidden_layers as number;
    await withRuntime(ck, "fp32", async (rt) => {
      const H = rt.info().hiddenSize;
      for (const B of [1, 2]) {
        const x = fakeHidden(B, 8, H, 10 + B);
        const ref = reference(ck, 0, L, x);
        // stateless forward
        const full = await rt.forward(0, L, x);
        assert.ok(maxAbsDiff(full.data, ref) <= TOL, `forward diff ${maxAbsDiff(full.data, ref)}`);
        // prefill 5 + 3 decode steps through the cache
        const s = await rt.openSession({ start: 0, end: L, maxLength: 16, batch: B });
        const outs = [await s.step(slice(x, 0, 5))];
        for (let k = 5; k < 8; k++) outs.push(await s.step(slice(x, k, k + 1)));
        const inc = concat(outs);
        const d = maxAbsDiff(inc.data, ref);
        assert.ok(d <= TOL, `incremental vs reference: ${d}`);
        assert.ok(maxAbsDiff(inc.data, full.data) <= 1e-5, "incremental = full sequence");
        assert.ok(maxAbsDiff(ref, x.data) > 0.5, "the blocks really change the input");
        // rollback to 5 with different tokens = recomputation of the new sequence
        const y = fakeHidden(B, 3, H, 99);
        const rolled = await s.step(y, { startFromPosition: 5 });
        const x2 = concat([slice(x, 0, 5), y]);
        assert.ok(
          maxAbsDiff(rolled.data, slice({ data: reference(ck, 0, L, x2), shape: [B, 8, H] }, 5, 8).data) <=
            TOL,
          "rollback",
        );
        assert.equal(s.position, 8);
        if (B === 2) {
          // hypoIds [1, 0]: continuing row r from the other row's cache
          const z = fakeHidden(2, 1, H, 7);
          const swapped = await s.step(z, { hypoIds: [1, 0] });
          const swappedHist = concat([slice(x2, 0, 8), z]);
          // reference: row r sees history of row 1-r followed by z[r]
          const hist = new Float32Array(2 * 9 * H);
          for (let r = 0; r < 2; r++) {
            hist.set(swappedHist.data.subarray(((1 - r) * 9) * H, ((1 - r) * 9 + 8) * H), r * 9 * H);
            hist.set(z.data.subarray(r * H, (r + 1) * H), (r * 9 + 8) * H);
          }
          const refSwap = slice(
            { data: reference(ck, 0, L, { data: hist, shape: [2, 9, H] }), shape: [2, 9, H] },
            8,
            9,
          );
          assert.ok(
            maxAbsDiff(swapped.data, refSwap.data) <= TOL,
            `hypoIds ${maxAbsDiff(swapped.data, refSwap.data)}`,
          );
        }
        await s.close();
        // block by block equals the span in one go
        let yb = x;
        for (let i = 0; i < L; i++) yb = await rt.forward(i, i + 1, yb);
        assert.ok(maxAbsDiff(yb.data, full.data) <= 1e-5, "block by block = span");
      }
    });
  });
}

/** int8 tolerance: max |int8 − reference| ≤ 5% of the span's max |output − input| (docs/benchmarks.md). */
const INT8_REL_TOL = 0.05;

for (const family of ["bloom", "llama", "qwen3"] as const) {
  Deno.test(`runtime int8 (${family}): within ${INT8_REL_TOL * 100}% of the span's change, cached and full`, async () => {
    const ck = await make(family);
    const L = ck.config.model_type === "bloom"
      ? ck.config.n_layer as number
      : ck.config.num_hidden_layers as number;
    await withRuntime(ck, "int8", async (rt) => {
      assert.equal(rt.info().weights, "int8");
      const H = rt.info().hiddenSize;
      const x = fakeHidden(1, 8, H, 21);
      const ref = reference(ck, 0, L, x);
      const change = maxAbsDiff(ref, x.data);
      const s = await rt.openSession({ start: 0, end: L, maxLength: 8, batch: 1 });
      const outs = [await s.step(slice(x, 0, 5))];
      for (let k = 5; k < 8; k++) outs.push(await s.step(slice(x, k, k + 1)));
      const inc = concat(outs);
      const err = maxAbsDiff(inc.data, ref);
      console.log(
        `int8 ${family}: max abs error ${err.toExponential(2)}, span change ${change.toFixed(3)}, ratio ${
          (err / change).toFixed(4)
        }`,
      );
      assert.ok(err <= INT8_REL_TOL * change, `int8 error ${err} vs change ${change}`);
      assert.ok(err > 0, "int8 is not secretly fp32");
      const full = await rt.forward(0, L, x);
      // Activations are quantized per call (dynamic, per tensor), so cached and full runs differ
      // slightly in int8; both stay within the tolerance of the reference.
      assert.ok(maxAbsDiff(full.data, ref) <= INT8_REL_TOL * change, "int8 full sequence within tolerance");
    });
  });
}
