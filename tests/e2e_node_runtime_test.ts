import assert from "node:assert/strict";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { resolveConfig } from "../lib/config/resolve_config.ts";
import { silentLogger } from "../lib/util/logger.ts";
import { createRuntimePart, pinnedKey } from "../lib/node/runtime_part.ts";
import { PlumiseError } from "../lib/errors.ts";

/** An offline node's config over a local checkpoint, listening on 127.0.0.1 (direct path on `directPort`). */
function offlineConfig(root: string, model: string, directPort: number) {
  return resolveConfig({
    env: {
      PLUMISE_OFFLINE: "true",
      MODEL_NAME: model,
      PLUMISE_DATA_DIR: `${root}/data`,
      HF_HOME: `${root}/hf`,
      PETALS_HOST: "127.0.0.1",
      DIRECT_PORT: String(directPort),
    },
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
}

Deno.test({
  name: "runtime part: total blocks from config.json, span loaded, throughput measured once then cached",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      const ckpt = await makeBloomCheckpoint({ dir: `${root}/ckpt`, numLayers: 4, shards: 2 });
      const config = offlineConfig(root, ckpt.dir, 0);
      const signal = new AbortController().signal;
      const part = createRuntimePart(config, silentLogger);
      assert.equal(await part.totalBlocks({ signal }), 4);
      assert.equal(part.figures(), undefined);
      await part.load({ start: 1, end: 3 }, { signal });
      const info = part.blocks().info();
      assert.deepEqual([info.start, info.end], [1, 3]);
      const tp = await part.throughput({ signal });
      assert.ok(tp > 0);
      const measured = part.announced();
      assert.ok(measured.inferenceRps > 0 && measured.forwardRps > 0);
      const cache = JSON.parse(await Deno.readTextFile(`${root}/data/throughput.json`));
      assert.deepEqual(Object.values(cache), [measured]);
      // keyed by where the runtime pinned its threads (what CPU_PINNING=auto decided), not the setting
      assert.equal(
        Object.keys(cache)[0].split("|").at(-2),
        pinnedKey(info.pinnedCpus),
        Object.keys(cache)[0],
      );
      assert.equal(part.figures()!.openSessions, 0, "the measurement session was closed");
      await part.stop();

      // A second start on the same machine reads the cache instead of measuring.
      await Deno.writeTextFile(
        `${root}/data/throughput.json`,
        JSON.stringify({ [Object.keys(cache)[0]]: { ...measured, throughput: 123.5 } }),
      );
      const again = createRuntimePart(config, silentLogger);
      await again.load({ start: 1, end: 3 }, { signal });
      assert.equal(await again.throughput({ signal }), 123.5);

      // `measure` (what `plumise bench` runs) measures again despite the cache and replaces its entry.
      const m = await again.measure({ signal });
      assert.ok(m.speed.hotStepMs > 0 && m.speed.pipelinedStepMs > 0 && m.speed.gapMs >= 1);
      assert.equal(
        m.speed.decodeStepsPerSecond,
        1000 / Math.max(m.speed.hotStepMs, m.speed.pipelinedStepMs),
        "the slower of hot and pipelined steps",
      );
      assert.equal(
        m.figures.inferenceRps,
        Math.round(m.speed.decodeStepsPerSecond * 2 * 100) / 100,
        "× 2 blocks",
      );
      assert.equal(m.cachedAt, `${root}/data/throughput.json`);
      const replaced = JSON.parse(await Deno.readTextFile(`${root}/data/throughput.json`));
      assert.deepEqual(Object.values(replaced), [m.figures]);
      assert.deepEqual(again.announced(), m.figures);
      assert.equal(again.figures()!.openSessions, 0);
      await again.stop();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "runtime part: the direct port is bound at load; a swap takes a free port while the old blocks hold it, then its own",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const root = await Deno.makeTempDir();
    try {
      const ckpt = await makeBloomCheckpoint({ dir: `${root}/ckpt`, numLayers: 4, shards: 1 });
      const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (probe.addr as Deno.NetAddr).port;
      probe.close();
      const config = offlineConfig(root, ckpt.dir, port);
      const signal = new AbortController().signal;
      const part = createRuntimePart(config, silentLogger);
      await part.load({ start: 0, end: 2 }, { signal });
      assert.equal(part.blocks().info().directPort, port);

      // a second node on the same port fails at once with a clear error
      const other = createRuntimePart(config, silentLogger);
      await assert.rejects(other.load({ start: 2, end: 4 }, { signal }), (err: unknown) => {
        assert.ok(err instanceof PlumiseError);
        assert.equal(err.code, "DIRECT_PORT_IN_USE");
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
        assert.match(err.hint, /--direct-port/);
        return true;
      });

      // rebalancing: the new span loads while the old one still holds the port
      const release = await part.swap({ start: 2, end: 4 }, { signal });
      const moved = part.blocks().info();
      assert.deepEqual([moved.start, moved.end], [2, 4]);
      assert.ok(moved.directPort !== undefined && moved.directPort !== port, `moved to ${moved.directPort}`);
      await release();
      // the old blocks let go of DIRECT_PORT: the direct path is back on it (before: until restart)
      assert.equal(part.blocks().info().directPort, port);
      const back = await part.blocks().openSession({ start: 2, end: 4, batch: 1, maxLength: 8 });
      const served = await back.offerDirect!({ dtype: "f32" });
      assert.equal(served.offer.port, port);
      served.cancel();
      await back.close();
      await part.stop();

      // off: no listener, no offers
      const off = createRuntimePart({ ...config, directPort: -1 }, silentLogger);
      await off.load({ start: 0, end: 2 }, { signal });
      assert.equal(off.blocks().info().directPort, undefined);
      await off.stop();
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
