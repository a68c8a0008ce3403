/**
 * A KvEngine over a whole generated checkpoint for the engine's unit tests: loaded with one thread,
 * handed to `fn`, disposed, and then checked to have released every native object.
 */
import assert from "node:assert/strict";
import { engineSource, resolveCheckpoint } from "../../lib/runtime/checkpoint.ts";
import type { KvCacheType } from "../../lib/runtime/kv_block_graph.ts";
import { KvEngine } from "../../lib/runtime/kv_engine.ts";
import { resolveOrtLibrary } from "../../lib/runtime/native/ort_library_path.ts";
import type { Checkpoint } from "./checkpoint_fixture.ts";

/** The checkpoint's number of blocks. */
export const layers = (ck: Checkpoint) => (ck.config.n_layer ?? ck.config.num_hidden_layers) as number;

export interface EngineFixtureOptions {
  weights?: "fp32" | "int8";
  kvCache?: KvCacheType;
  /** Load the client head too (embed, logits). */
  head?: boolean;
}

export async function withEngine(
  ck: Checkpoint,
  o: EngineFixtureOptions,
  fn: (e: KvEngine, L: number, H: number) => Promise<void>,
): Promise<void> {
  const L = layers(ck);
  const r = await resolveCheckpoint({ model: ck.dir }, {
    start: 0,
    end: L,
    ...(o.head ? { head: true } : {}),
  });
  const e = new KvEngine();
  await e.load({
    ...engineSource(r),
    start: 0,
    end: L,
    weights: o.weights ?? "fp32",
    ...(o.kvCache ? { kvCache: o.kvCache } : {}),
    ...(o.head ? { head: true } : {}),
    threads: 1,
    maxLength: 64,
    libraryPath: await resolveOrtLibrary(),
  });
  try {
    await fn(e, L, e.cfg!.hiddenSize);
  } finally {
    await e.dispose();
  }
  assert.deepEqual(
    e.api.live,
    { env: 0, options: 0, session: 0, value: 0, memory: 0, container: 0 },
    "every object released",
  );
}
