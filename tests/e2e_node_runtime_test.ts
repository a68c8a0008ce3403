import assert from "node:assert/strict";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { resolveConfig } from "../lib/config/resolve_config.ts";
import { silentLogger } from "../lib/util/logger.ts";
import { createRuntimePart } from "../lib/node/runtime_part.ts";

Deno.test({
  name: "runtime part: total blocks from config.json, span loaded, throughput measured once then cached",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      const ckpt = await makeBloomCheckpoint({ dir: `${root}/ckpt`, numLayers: 4, shards: 2 });
      const config = resolveConfig({
        env: {
          PLUMISE_OFFLINE: "true",
          MODEL_NAME: ckpt.dir,
          PLUMISE_DATA_DIR: `${root}/data`,
          HF_HOME: `${root}/hf`,
        },
        system: { availableMemoryBytes: 8 * 2 ** 30 },
      }).config;
      const signal = new AbortController().signal;
      const part = createRuntimePart(config, silentLogger);
      assert.equal(await part.totalBlocks(signal), 4);
      assert.equal(part.figures(), undefined);
      await part.load({ start: 1, end: 3 }, signal);
      const info = part.blocks().info();
      assert.deepEqual([info.start, info.end], [1, 3]);
      const tp = await part.throughput(signal);
      assert.ok(tp > 0);
      const measured = part.announced();
      assert.ok(measured.inferenceRps > 0 && measured.forwardRps > 0);
      const cache = JSON.parse(await Deno.readTextFile(`${root}/data/throughput.json`));
      assert.deepEqual(Object.values(cache), [measured]);
      assert.equal(part.figures()!.openSessions, 0, "the measurement session was closed");
      await part.stop();

      // A second start on the same machine reads the cache instead of measuring.
      await Deno.writeTextFile(
        `${root}/data/throughput.json`,
        JSON.stringify({ [Object.keys(cache)[0]]: { ...measured, throughput: 123.5 } }),
      );
      const again = createRuntimePart(config, silentLogger);
      await again.load({ start: 1, end: 3 }, signal);
      assert.equal(await again.throughput(signal), 123.5);
      await again.stop();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
