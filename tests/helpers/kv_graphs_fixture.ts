/** KvGraphs loaded straight from a test checkpoint, for the graph-level tests (kv_graphs_test and the packing check's). */
import assert from "node:assert/strict";
import { engineSource, resolveCheckpoint } from "../../lib/runtime/checkpoint.ts";
import { engineSettings, type KvGraphOptions, KvGraphs } from "../../lib/runtime/kv_graphs.ts";
import { type ModelConfig, parseModelConfig } from "../../lib/runtime/model_config.ts";
import { OrtApi } from "../../lib/runtime/native/ort_api.ts";
import { resolveOrtLibrary } from "../../lib/runtime/native/ort_library_path.ts";
import { CheckpointTensors } from "../../lib/runtime/safetensors.ts";
import type { Checkpoint } from "./checkpoint_fixture.ts";
import { layers } from "./kv_engine_fixture.ts";

/** Loads every block of `ck` into fresh KvGraphs with `config` added to the sessions' settings. */
export async function withGraphs(
  ck: Checkpoint,
  weights: "fp32" | "int8",
  config: Record<string, string>,
  fn: (g: KvGraphs, api: OrtApi, o: KvGraphOptions, L: number, cfg: ModelConfig) => void,
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
    fn(g, api, o, L, cfg);
  } finally {
    await tensors.close();
    g.release();
    api.dispose();
  }
  assert.deepEqual(api.live, { env: 0, options: 0, session: 0, value: 0, memory: 0, container: 0 });
}
