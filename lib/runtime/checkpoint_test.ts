import assert from "node:assert/strict";
import { ConfigError, RuntimeError } from "../errors.ts";
import { makeBloomCheckpoint } from "../../tests/helpers/checkpoint_fixture.ts";
import { resolveCheckpoint } from "./checkpoint.ts";

Deno.test("resolveCheckpoint (local dir): only the shards of the requested blocks / head, prefixes detected", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 4, shards: 3, transformerPrefix: true });
  const blocks = await resolveCheckpoint({ model: ck.dir }, { start: 3, end: 4 });
  assert.deepEqual(Object.keys(blocks.paths), ["model-00003-of-00003.safetensors"]);
  assert.equal(blocks.blockPrefix, "transformer.h.");
  assert.equal(blocks.headPrefix, "transformer.");
  assert.equal(blocks.local, true);
  assert.equal(blocks.modelConfig.numLayers, 4);
  const head = await resolveCheckpoint({ model: ck.dir }, { head: true, tokenizer: true });
  assert.deepEqual(Object.keys(head.paths).sort(), [
    "model-00001-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
  ]);
  assert.equal(head.tokenizerPath, `${ck.dir}/tokenizer.json`);
  await assert.rejects(
    resolveCheckpoint({ model: ck.dir }, { start: 2, end: 5 }),
    (e: unknown) => e instanceof RuntimeError && e.code === "BAD_SPAN" && /\[2, 5\)/.test(e.message),
  );
  await assert.rejects(
    resolveCheckpoint({ model: "not a repo id!" }),
    (e: unknown) =>
      e instanceof RuntimeError && /neither a local directory nor a hub repo id/.test(e.message),
  );
});

Deno.test("resolveCheckpoint: an index whose weight_map names a file outside the checkpoint is refused", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 2 });
  const indexPath = `${ck.dir}/model.safetensors.index.json`;
  const index = JSON.parse(await Deno.readTextFile(indexPath));
  const [tensor] = Object.keys(index.weight_map);
  for (const file of ["../../../etc/passwd", "/etc/passwd", "a/../../b.safetensors", "x\\..\\y"]) {
    await Deno.writeTextFile(
      indexPath,
      JSON.stringify({ ...index, weight_map: { ...index.weight_map, [tensor]: file } }),
    );
    await assert.rejects(resolveCheckpoint({ model: ck.dir }, { start: 0, end: 1 }), (e: unknown) => {
      assert.ok(e instanceof RuntimeError && e.code === "BAD_CHECKPOINT", String(e));
      assert.ok(
        e.message.includes(`maps ${tensor} to ${JSON.stringify(file)}, not a file inside`),
        e.message,
      );
      return true;
    });
  }
});

Deno.test("resolveCheckpoint: a JSON file that is null, and a config whose block count is not the weights', are refused", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  const config = JSON.parse(await Deno.readTextFile(`${ck.dir}/config.json`));
  for (const file of ["config.json", "generation_config.json", "model.safetensors.index.json"]) {
    const path = `${ck.dir}/${file}`;
    const before = await Deno.readTextFile(path).catch(() => undefined);
    await Deno.writeTextFile(path, "null");
    await assert.rejects(
      resolveCheckpoint({ model: ck.dir }, { start: 0, end: 1 }),
      (e: unknown) =>
        e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && /is not a JSON object/.test(e.message),
      file,
    );
    if (before === undefined) await Deno.remove(path);
    else await Deno.writeTextFile(path, before);
  }
  for (
    const [layers, re] of [[3, /says 3 blocks, its weights have no block 2/], [
      1,
      /says 1 blocks, its weights have more/,
    ]] as const
  ) {
    await Deno.writeTextFile(`${ck.dir}/config.json`, JSON.stringify({ ...config, n_layer: layers }));
    await assert.rejects(
      resolveCheckpoint({ model: ck.dir }, { start: 0, end: 1 }),
      (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && re.test(e.message),
    );
  }
});

Deno.test("resolveCheckpoint: a path that is no directory is a config error, not a hub lookup", async () => {
  for (const model of ["./nope-dir", "/nonexistent/ckpt", "../up/ckpt", "~/models/x"]) {
    // before: "repo ./nope-dir not found on the hub", after asking the hub for it
    await assert.rejects(
      resolveCheckpoint({ model, hfHome: "/nonexistent-hf", hfEndpoint: "http://127.0.0.1:9" }),
      (e: unknown) =>
        e instanceof ConfigError && e.code === "CONFIG_INVALID" && e.exitCode === 2 &&
        e.message === `MODEL_NAME ${model}: no such checkpoint directory`,
      model,
    );
  }
});
