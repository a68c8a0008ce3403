import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { makeLlamaCheckpoint } from "../../tests/helpers/checkpoint_fixture.ts";
import { BlockEngine } from "./block_engine.ts";
import { resolveCheckpoint } from "./checkpoint.ts";
import { fakeHidden } from "./fake_backend.ts";

function rows(x: { data: Float32Array; shape: number[] }, from: number, to: number) {
  const [b, t, h] = x.shape;
  const out = new Float32Array(b * (to - from) * h);
  for (let r = 0; r < b; r++) {
    out.set(x.data.subarray((r * t + from) * h, (r * t + to) * h), r * (to - from) * h);
  }
  return { data: out, shape: [b, to - from, h] };
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

Deno.test("BlockEngine: the KV cache grows by reallocation across many steps (batch 2) and stays exact", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 2, shards: 1 });
  const r = await resolveCheckpoint({ model: ck.dir }, { start: 0, end: 2 });
  const engine = new BlockEngine();
  await engine.load({ ...r, start: 0, end: 2, weights: "fp32", threads: 1 });
  try {
    const H = 64;
    const x = { ...fakeHidden(2, 70, H, 8), shape: [2, 70, H] };
    const full = await engine.forward(0, 2, x);
    engine.open("s", 0, 2, 80, 2);
    // 3 + 1×20 + 47: crosses the initial capacity (16) and several doublings.
    const sizes = [3, ...Array(20).fill(1), 47];
    let pos = 0;
    for (const n of sizes) {
      const y = await engine.step("s", rows(x, pos, pos + n));
      const want = rows(full, pos, pos + n);
      assert.ok(maxDiff(y.data, want.data) <= 1e-5, `step at ${pos}: ${maxDiff(y.data, want.data)}`);
      pos += n;
    }
    assert.equal(pos, 70);
    await assert.rejects(
      engine.step("s", rows(x, 0, 11)),
      (e: unknown) => e instanceof RuntimeError && e.code === "TOO_LONG",
    );
    assert.equal(engine.close("s"), true);
    assert.equal(engine.close("s"), false);
    await assert.rejects(
      engine.step("s", rows(x, 0, 1)),
      (e: unknown) => e instanceof RuntimeError && e.code === "UNKNOWN_SESSION",
    );
  } finally {
    await engine.dispose();
  }
});
