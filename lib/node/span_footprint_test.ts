import assert from "node:assert/strict";
import { BASE_PROCESS_BYTES, TIERS } from "../config/tiers.ts";
import { BLOOM_560M, LLAMA_8B, QWEN3_32B } from "../testing/model_configs.ts";
import { blockShapeOf, spanFootprint, tierOfModel } from "./span_footprint.ts";

Deno.test("span footprint: int8 memory per block agrees with the tier table", () => {
  for (
    const [raw, tier] of [[BLOOM_560M, TIERS.lite], [LLAMA_8B, TIERS.pro], [
      QWEN3_32B,
      TIERS.network,
    ]] as const
  ) {
    const shape = blockShapeOf(raw)!;
    const one = spanFootprint(shape, 1, "int8");
    assert.equal(one.memoryBytes - BASE_PROCESS_BYTES, tier.perBlockBytes);
    assert.ok(spanFootprint(shape, 1, "fp32").memoryBytes > 3 * one.memoryBytes - 3 * BASE_PROCESS_BYTES);
  }
  assert.equal(tierOfModel("bigscience/bloom-560m")?.name, "lite");
  assert.equal(tierOfModel("qwen/qwen3-32b")?.name, "network");
  // Qwen3-32B on disk: 64 blocks of 487.6M BF16 weights plus untied embeddings, about 65.5 GB
  const q = spanFootprint(blockShapeOf(QWEN3_32B)!, 1, "int8");
  assert.ok(q.checkpointFileBytes > 65e9 && q.checkpointFileBytes < 66e9, String(q.checkpointFileBytes));
});

Deno.test("span footprint: disk is the checkpoint's dtype; the whole bloom-560m is about 1.1 GB", () => {
  const fp = spanFootprint(blockShapeOf(BLOOM_560M)!, 2, "int8");
  assert.ok(fp.checkpointFileBytes > 1.0e9 && fp.checkpointFileBytes < 1.2e9, String(fp.checkpointFileBytes));
  assert.equal(fp.blockFileBytes, 2 * (1024 * 1024 * 4 + 1024 * 4096 * 2) * 2);
  assert.equal(blockShapeOf({ model_type: "gpt2" }), undefined);
});

Deno.test("span footprint: the client head is its float16 table and its LM head twice (packed beside it)", () => {
  const q = blockShapeOf(QWEN3_32B)!;
  const V = 151936, H = 5120;
  // a BF16 file: the table in float16, the LM head in int8 (1 byte) or fp32 (4 bytes), each twice
  assert.equal(spanFootprint(q, 1, "int8").headBytes, V * H * (2 + 2 * 1));
  assert.equal(spanFootprint(q, 1, "fp32").headBytes, V * H * (2 + 2 * 4));
  // about 3.1 GB for Qwen3-32B in int8, whatever the number of blocks
  assert.equal(spanFootprint(q, 4, "int8").headBytes, spanFootprint(q, 1, "int8").headBytes);
  const f32 = blockShapeOf({ ...BLOOM_560M, torch_dtype: "float32" })!;
  assert.equal(spanFootprint(f32, 1, "int8").headBytes, f32.vocabSize * f32.hiddenSize * (4 + 2));
});
