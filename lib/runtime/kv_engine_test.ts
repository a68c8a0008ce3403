import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import {
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
  makeQwen3Checkpoint,
} from "../../tests/helpers/checkpoint_fixture.ts";
import { fromSeq, maxAbsDiff, referenceSpan, toSeq } from "../../tests/helpers/runtime_reference.ts";
import { fakeHidden } from "../testing/mod.ts";
import { withEngine } from "../../tests/helpers/kv_engine_fixture.ts";

const rows = (x: { data: Float32Array; shape: readonly number[] }, from: number, to: number) => {
  const [b, t, h] = x.shape;
  const out = new Float32Array(b * (to - from) * h);
  for (let r = 0; r < b; r++) {
    out.set(x.data.subarray((r * t + from) * h, (r * t + to) * h), r * (to - from) * h);
  }
  return { data: out, shape: [b, to - from, h] };
};

Deno.test("KvEngine: caches are allocated at open and written in place; a decode step leaves no native object", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 2, shards: 1 });
  await withEngine(ck, {}, async (e, L, H) => {
    const KVH = e.cfg!.numKvHeads, D = e.cfg!.headDim;
    // 64: a length class of its own (kv_slab.ts), so the slot is [1, KVH, maxLength, D]
    e.open("s", 0, L, 64, 1);
    const { k, v } = e.cacheOf("s", 1);
    assert.ok(k instanceof Float32Array && v instanceof Float32Array);
    assert.equal(k.length, KVH * 64 * D, "[B, KVH, maxLength, D] from the start");
    const x = fakeHidden(1, 9, H, 3);
    await e.step("s", rows(x, 0, 5));
    await e.step("s", rows(x, 5, 6));
    const live = e.api.live.value; // after the first decode step: its scratch is kept for the next
    for (let p = 6; p < 9; p++) {
      await e.step("s", rows(x, p, p + 1));
      assert.equal(e.api.live.value, live, "no tensor left behind by a decode step");
    }
    assert.equal(e.cacheOf("s", 1).k, k, "the same buffer, written in place");
    const used = (h: number, pos: number) => k.subarray((h * 64 + pos) * D, (h * 64 + pos + 1) * D);
    for (let h = 0; h < KVH; h++) {
      for (let pos = 0; pos < 9; pos++) assert.ok(used(h, pos).some((z) => z !== 0), `head ${h} row ${pos}`);
      for (let pos = 9; pos < 64; pos++) {
        assert.ok(used(h, pos).every((z) => z === 0), `head ${h} row ${pos}`);
      }
    }
    assert.equal(e.positionOf("s"), 9);
  });
});

Deno.test("KvEngine: a failing step fails only its session; open/close returns every native object", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  await withEngine(ck, {}, async (e, L, H) => {
    const x = fakeHidden(1, 6, H, 5);
    const full = await e.forward(0, L, { data: x.data, shape: [1, 6, H] });
    e.open("a", 0, L, 16, 1);
    e.open("b", 0, L, 16, 1);
    await e.step("a", rows(x, 0, 3));
    await e.step("b", rows(x, 0, 3));
    // hidden states of the wrong size (the runtime validates them; the engine must survive anyway)
    await assert.rejects(
      e.step("a", { data: new Float32Array(H + 1), shape: [1, 1, H + 1] }),
      (err: unknown) =>
        err instanceof RuntimeError && err.code === "BAD_INPUT" && /hidden states of shape/.test(err.message),
    );
    assert.equal(e.positionOf("a"), 3, "the failed step did not advance the session");
    const yb = await e.step("b", rows(x, 3, 6));
    assert.ok(maxAbsDiff(yb.data, rows(full, 3, 6).data) <= 1e-5, "the other session still serves");
    const ya = await e.step("a", rows(x, 3, 6));
    assert.ok(maxAbsDiff(ya.data, rows(full, 3, 6).data) <= 1e-5, "and so does the failed one");
    let before = { ...e.api.live };
    for (let i = 0; i < 100; i++) {
      if (i === 1) before = { ...e.api.live }; // after the first: the pass's scratch of its size is kept
      e.open(`c${i}`, 0, L, 8, 2);
      await e.step(`c${i}`, { ...fakeHidden(2, 2, H, i), shape: [2, 2, H] });
      await e.step(`c${i}`, { ...fakeHidden(2, 2, H, i), shape: [2, 2, H] }); // the row-by-row path
      assert.equal(e.close(`c${i}`), true);
    }
    assert.deepEqual(e.api.live, before);
    // a session opened after a close reuses its buffers, stale rows and all: results must not change
    assert.equal(e.close("a"), true);
    e.open("d", 0, L, 16, 1);
    const z = fakeHidden(1, 5, H, 77);
    const zFull = await e.forward(0, L, { data: z.data, shape: [1, 5, H] });
    const zs = [await e.step("d", rows(z, 0, 1)), await e.step("d", rows(z, 1, 5))];
    assert.ok(maxAbsDiff(zs[0].data, rows(zFull, 0, 1).data) <= 1e-5, "first step on a reused buffer");
    assert.ok(maxAbsDiff(zs[1].data, rows(zFull, 1, 5).data) <= 1e-5, "and the next");
    assert.equal(e.close("c0"), false);
    await assert.rejects(
      e.step("c0", rows(x, 0, 1)),
      (err: unknown) => err instanceof RuntimeError && err.code === "UNKNOWN_SESSION",
    );
  });
});

for (const family of ["bloom", "llama"] as const) {
  Deno.test(`KvEngine (${family}): float16 caches stay within float16's precision of the reference`, async () => {
    const ck = family === "bloom" ? await makeBloomCheckpoint() : await makeLlamaCheckpoint();
    await withEngine(ck, { kvCache: "float16" }, async (e, L, H) => {
      assert.ok(e.cacheType === "float16");
      const x = fakeHidden(1, 10, H, 9);
      const ref = fromSeq(referenceSpan(ck, 0, L, toSeq(x.data, 1, 10, H)));
      e.open("s", 0, L, 16, 1);
      const outs = [await e.step("s", rows(x, 0, 6))];
      for (let p = 6; p < 10; p++) outs.push(await e.step("s", rows(x, p, p + 1)));
      const got = new Float32Array(10 * H);
      let pos = 0;
      for (const o of outs) {
        got.set(o.data, pos * H);
        pos += o.shape[1];
      }
      const err = maxAbsDiff(got, ref), change = maxAbsDiff(ref, x.data);
      assert.ok(err > 0 && err <= 2e-3 * change, `float16 cache error ${err} vs change ${change}`);
    });
  });
}

for (const family of ["bloom", "llama", "qwen3"] as const) {
  Deno.test(`KvEngine (${family}): a head size that is no multiple of 8 is padded in the graph and matches the reference`, async () => {
    const ck = family === "bloom"
      ? await makeBloomCheckpoint({ headDim: 12, numHeads: 3, numLayers: 2 })
      : family === "llama"
      ? await makeLlamaCheckpoint({ headDim: 12, numLayers: 2 })
      : await makeQwen3Checkpoint({ headDim: 12, numLayers: 2 });
    await withEngine(ck, {}, async (e, L, H) => {
      const x = fakeHidden(2, 7, H, 4);
      const ref = fromSeq(referenceSpan(ck, 0, L, toSeq(x.data, 2, 7, H)));
      const full = await e.forward(0, L, { data: x.data, shape: [2, 7, H] });
      assert.ok(maxAbsDiff(full.data, ref) <= 1e-4, `forward ${maxAbsDiff(full.data, ref)}`);
      e.open("s", 0, L, 16, 2);
      const y1 = await e.step("s", rows(x, 0, 3));
      const y2 = await e.step("s", rows(x, 3, 4));
      const y3 = await e.step("s", rows(x, 4, 7)); // several tokens after a past, batch 2: row by row
      const refRows = { data: ref, shape: [2, 7, H] };
      for (const [y, a, b] of [[y1, 0, 3], [y2, 3, 4], [y3, 4, 7]] as const) {
        assert.ok(maxAbsDiff(y.data, rows(refRows, a, b).data) <= 1e-4, `rows ${a}..${b}`);
      }
    });
  });
}
