import assert from "node:assert/strict";
import { resolveConfig } from "../config/resolve_config.ts";
import { ConfigError } from "../errors.ts";
import { silentLogger } from "../util/logger.ts";
import { makeBloomCheckpoint } from "../../tests/helpers/checkpoint_fixture.ts";
import { benchNode, benchSpan } from "./bench_node.ts";

function config(root: string, model: string, env: Record<string, string> = {}) {
  return resolveConfig({
    env: { MODEL_NAME: model, PLUMISE_DATA_DIR: `${root}/data`, HF_HOME: `${root}/hf`, ...env },
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
}

Deno.test("bench span: the pinned span, else the first numBlocks blocks cut to the model", () => {
  assert.deepEqual(benchSpan(config("/x", "m", { NUM_BLOCKS: "4" }), 24), { start: 0, end: 4 });
  assert.deepEqual(benchSpan(config("/x", "m", { NUM_BLOCKS: "4" }), 3), { start: 0, end: 3 });
  assert.deepEqual(benchSpan(config("/x", "m", { BLOCK_INDICES: "5:9" }), 24), { start: 5, end: 9 });
  assert.throws(() => benchSpan(config("/x", "m", { BLOCK_INDICES: "5:9" }), 8), ConfigError);
});

Deno.test({
  name: "bench node: measures the span, caches the figures, unloads, leaves the direct port alone",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      const ck = await makeBloomCheckpoint({ dir: `${root}/ckpt`, numLayers: 3 });
      // a port someone else holds: a benchmark that tried to bind it would fail
      using held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (held.addr as Deno.NetAddr).port;
      const c = config(root, ck.dir, {
        BLOCK_INDICES: "1:3",
        DIRECT_PORT: String(port),
        PETALS_HOST: "127.0.0.1",
      });
      const r = await benchNode(c, silentLogger, { signal: new AbortController().signal });
      assert.deepEqual([r.start, r.end, r.totalBlocks, r.model], [1, 3, 3, ck.dir]);
      assert.ok(r.speed.hotStepMs > 0 && r.figures.throughput > 0);
      const cache = JSON.parse(await Deno.readTextFile(`${root}/data/throughput.json`));
      assert.deepEqual(Object.values(cache), [r.figures]);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
