import assert from "node:assert/strict";
import { makeBloomCheckpoint, makeQwen3Checkpoint } from "../../tests/helpers/checkpoint_fixture.ts";
import { withGraphs } from "../../tests/helpers/kv_graphs_fixture.ts";
import { OWN_POOL_THREADS_MAX, ownPoolsFit } from "./kv_graphs.ts";

for (const [model, make] of [["bloom", makeBloomCheckpoint], ["qwen3", makeQwen3Checkpoint]] as const) {
  for (const weights of ["fp32", "int8"] as const) {
    Deno.test(`KvGraphs (${model}, ${weights}): the joined and split graphs pack the weights once and let the arrays go`, async () => {
      await withGraphs(await make(), weights, {}, (g, _api, _o, L) => {
        assert.equal(g.blocks.size, L);
        assert.equal(g.unpackedBlocks, 0, "onnxruntime packs every shared matrix on this platform");
        for (const b of g.blocks.values()) {
          assert.deepEqual(b.weights, [], "no tensor keeps the arrays alive");
        }
      });
    });
  }
}

Deno.test("ownPoolsFit: the blocks' own pools add up to OWN_POOL_THREADS_MAX threads at most", () => {
  assert.equal(ownPoolsFit(OWN_POOL_THREADS_MAX, 2), true, "one thread each beyond the caller");
  assert.equal(ownPoolsFit(OWN_POOL_THREADS_MAX + 1, 2), false);
  assert.equal(ownPoolsFit(73, 8), true, "511 threads");
  assert.equal(ownPoolsFit(74, 8), false, "518 threads: the joined graphs share the engine's pool");
  assert.equal(ownPoolsFit(10_000, 1), true, "one thread: pools without threads of their own");
});
