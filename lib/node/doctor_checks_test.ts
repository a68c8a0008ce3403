import assert from "node:assert/strict";
import { resolveConfig } from "../config/resolve_config.ts";
import { checkMemory } from "./doctor_checks.ts";
import { QWEN3_32B } from "../testing/model_configs.ts";
import { blockShapeOf, spanFootprint } from "./span_footprint.ts";

const config = (env: Record<string, string>) =>
  resolveConfig({ env, system: { availableMemoryBytes: 64 * 2 ** 30 } }).config;

Deno.test("doctor memory: the blocks, then the client head; without the config the tier's estimate says so", () => {
  const c = config({ MODEL_NAME: "qwen/qwen3-32b", NUM_BLOCKS: "4", WEIGHTS: "int8" });
  const GB = 1e9;
  const fits = checkMemory(c, QWEN3_32B, 64 * GB);
  assert.equal(fits.ok, true, fits.detail);
  assert.match(
    fits.detail,
    /^4 int8 blocks of qwen\/qwen3-32b need about .*, and the client head .* 2\.9 GiB more; /,
  );
  // enough for the blocks alone, not with the head: fails, and the hint names the head
  const fp = spanFootprint(blockShapeOf(QWEN3_32B)!, 4, "int8");
  const tight = checkMemory(c, QWEN3_32B, fp.memoryBytes + fp.headBytes - 1);
  assert.equal(tight.ok, false, tight.detail);
  assert.match(tight.hint ?? "", /client head/);
  assert.equal(checkMemory(c, QWEN3_32B, fp.memoryBytes + fp.headBytes).ok, true);
  // no config: the tier table's figure, the head not counted, and the detail says so
  const tierOnly = checkMemory(c, undefined, 64 * GB);
  assert.equal(tierOnly.ok, true);
  assert.match(tierOnly.detail, /from the tier table; the client head not counted/);
  const unknown = checkMemory(config({ MODEL_NAME: "someone/unknown", NUM_BLOCKS: "1" }), undefined, 64 * GB);
  assert.equal(unknown.ok, false);
  assert.match(unknown.detail, /cannot estimate/);
  // whatever kept the config away (a model the hub does not have, a hub that does not answer), the
  // checkpoint check above says it: before, this hint assumed the hub was unreachable
  assert.match(unknown.hint!, /fix the checkpoint check first/);
});
