import assert from "node:assert/strict";
import {
  type Checkpoint,
  makeBloomCheckpoint,
  makeQwen3Checkpoint,
} from "../../tests/helpers/checkpoint_fixture.ts";
import { layers } from "../../tests/helpers/kv_engine_fixture.ts";
import { engineSource, resolveCheckpoint } from "./checkpoint.ts";
import { checkWeightsPacked, engineSettings, type KvGraphOptions, KvGraphs } from "./kv_graphs.ts";
import { parseModelConfig } from "./model_config.ts";
import { OrtApi } from "./native/ort_api.ts";
import { resolveOrtLibrary } from "./native/ort_library_path.ts";
import { CheckpointTensors } from "./safetensors.ts";

/** Loads every block of `ck` into fresh KvGraphs with `config` added to the sessions' settings. */
async function withGraphs(
  ck: Checkpoint,
  weights: "fp32" | "int8",
  config: Record<string, string>,
  fn: (g: KvGraphs, api: OrtApi, o: KvGraphOptions, L: number) => void,
): Promise<void> {
  const L = layers(ck);
  const r = await resolveCheckpoint({ model: ck.dir }, { start: 0, end: L });
  const req = { ...engineSource(r), start: 0, end: L, weights };
  const cfg = parseModelConfig(req.config, req.generation ?? {});
  const tensors = new CheckpointTensors(new Map(Object.entries(req.weightMap)), (f) => req.paths[f]);
  const api = OrtApi.load(await resolveOrtLibrary());
  const base = engineSettings(1);
  const o: KvGraphOptions = {
    cacheType: "float32",
    maxLength: 16,
    settings: { ...base, config: { ...base.config, ...config } },
  };
  const g = new KvGraphs();
  try {
    await g.load(api, req, cfg, tensors, o);
    fn(g, api, o, L);
  } finally {
    await tensors.close();
    g.release();
    api.dispose();
  }
  assert.deepEqual(api.live, { env: 0, options: 0, session: 0, value: 0, memory: 0, container: 0 });
}

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

Deno.test("KvGraphs: where onnxruntime reads the weight arrays (packing off), they are kept with their values", async () => {
  const ck = await makeBloomCheckpoint();
  await withGraphs(ck, "int8", { "session.disable_prepacking": "1" }, (g, api, o, L) => {
    assert.equal(g.unpackedBlocks, L);
    const b = g.block(0);
    assert.ok(b.weights.length >= 4, "the block's four matrices stay");
    const before = b.weights.map((w) => w.data.slice());
    const cfg = parseModelConfig(ck.config);
    assert.equal(checkWeightsPacked(api, cfg, b, g.probe(api, cfg, o)), false);
    b.weights.forEach((w, i) =>
      assert.deepEqual(w.data, before[i], "the garbage was replaced by the values")
    );
  });
});
