import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
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
