import assert from "node:assert/strict";
import { makeBloomCheckpoint, makeQwen3Checkpoint } from "../../tests/helpers/checkpoint_fixture.ts";
import { withGraphs } from "../../tests/helpers/kv_graphs_fixture.ts";
import { TensorType } from "./native/ort_api.ts";
import { type BlockProbe, checkWeightsPacked } from "./packed_weights_check.ts";

for (const [model, make] of [["bloom", makeBloomCheckpoint], ["qwen3", makeQwen3Checkpoint]] as const) {
  Deno.test(`checkWeightsPacked (${model}): where onnxruntime reads the arrays (packing off), they are kept with their values`, async () => {
    await withGraphs(await make(), "int8", { "session.disable_prepacking": "1" }, (g, api, o, L, cfg) => {
      assert.equal(g.unpackedBlocks, L, "every block's probe saw its garbage");
      const b = g.block(0);
      assert.ok(b.weights.length >= 4, "the block's matrices stay");
      const before = b.weights.map((w) => w.data.slice());
      assert.equal(checkWeightsPacked(api, cfg, b, g.probe(api, cfg, o)), false);
      b.weights.forEach((w, i) =>
        assert.deepEqual(w.data, before[i], "the garbage was replaced by the values")
      );
    });
  });
}

Deno.test("checkWeightsPacked: arrays nothing reads are let go; outputs that are not finite keep them", async () => {
  await withGraphs(await makeBloomCheckpoint(), "fp32", {}, (g, api, o, _L, cfg) => {
    const b = g.block(0);
    assert.deepEqual(b.weights, [], "packed at load");
    const probe = g.probe(api, cfg, o);
    // an array no session uses stands in for weights onnxruntime no longer reads
    const unread = () => [api.tensor(new Float32Array(64).fill(1), [8, 8], TensorType.FLOAT)];
    b.weights = unread();
    assert.equal(checkWeightsPacked(api, cfg, b, probe), true);
    assert.deepEqual(b.weights, [], "released");
    // NaN in the joined graph's ALiBi bias: its outputs are NaN whatever the arrays hold, so the
    // probe cannot tell, and the arrays stay
    let calls = 0;
    const poisoned: BlockProbe = {
      tokens: probe.tokens,
      positions: probe.positions,
      caches: (rows, length, own) => {
        const c = probe.caches(rows, length, own);
        if (calls++ % 2 === 1) return c;
        return {
          ...c,
          extra: (past, s) => {
            const e = c.extra(past, s);
            (e[e.length - 1].data as Float32Array).fill(NaN);
            return e;
          },
        };
      },
    };
    const kept = unread();
    b.weights = kept;
    assert.equal(checkWeightsPacked(api, cfg, b, poisoned), false);
    assert.equal(b.weights, kept);
    for (const w of kept) w.release();
    b.weights = [];
  });
});
