import assert from "node:assert/strict";
import {
  AUTO_MEMORY_FRACTION,
  BASE_PROCESS_BYTES,
  blocksThatFit,
  chooseAutoTier,
  TIER_NAMES,
  TIERS,
} from "./tiers.ts";

Deno.test("tier table: models and block counts", () => {
  assert.equal(TIERS.lite.model, "bigscience/bloom-560m");
  assert.equal(TIERS.lite.numBlocks, 2);
  assert.equal(TIERS.standard.model, "bigscience/bloom-7b1");
  assert.equal(TIERS.pro.model, "meta-llama/Llama-3.1-8B");
  assert.equal(TIERS.ultra.model, "meta-llama/Llama-3.1-70B");
  assert.equal(TIERS.network.model, "qwen/qwen3-32b");
  assert.equal(TIERS.network.totalBlocks, 64);
  assert.equal(TIERS.network.weights, "int8");
  // qwen3-32b block: q/o 5120×8192 each, k/v 5120×1024 each, gate/up/down 5120×25600 each
  const qwenParams = 2 * 5120 * 8192 + 2 * 5120 * 1024 + 3 * 5120 * 25600;
  assert.equal(TIERS.network.perBlockBytes, Math.ceil(qwenParams * 1.25));
  // bloom-560m block: 12·H² = 12.58M parameters → ~15.7 MB at int8 with the 25% reserve
  assert.equal(TIERS.lite.perBlockBytes, Math.ceil(12 * 1024 * 1024 * 1.25));
  for (let i = 1; i < TIER_NAMES.length; i++) {
    const a = TIERS[TIER_NAMES[i - 1]], b = TIERS[TIER_NAMES[i]];
    assert.ok(
      a.perBlockBytes * a.numBlocks < b.perBlockBytes * b.numBlocks,
      `${b.name} must need more than ${a.name}`,
    );
  }
});

Deno.test("auto: boundary of each tier is exact", () => {
  for (const name of TIER_NAMES) {
    const t = TIERS[name];
    const need = t.perBlockBytes * t.numBlocks + BASE_PROCESS_BYTES;
    const atBoundary = need / AUTO_MEMORY_FRACTION;
    assert.equal(chooseAutoTier(atBoundary + 1)?.tier, name);
    const below = chooseAutoTier(atBoundary - 1);
    assert.notEqual(below?.tier, name);
  }
  assert.equal(chooseAutoTier(0), undefined);
});

Deno.test("auto: a NUM_BLOCKS override changes the fit", () => {
  const avail = 6 * 1024 ** 3;
  assert.equal(chooseAutoTier(avail)?.tier, "pro");
  assert.equal(chooseAutoTier(avail, 64)?.tier, "lite");
});

Deno.test("network: served blocks grow with memory up to the model's 64; auto needs 16 of them", () => {
  const t = TIERS.network;
  const forBlocks = (n: number) => (t.perBlockBytes * n + BASE_PROCESS_BYTES) / AUTO_MEMORY_FRACTION;
  assert.equal(blocksThatFit(t, forBlocks(1) - 1), 0);
  assert.equal(blocksThatFit(t, forBlocks(1) + 1), 1);
  assert.equal(blocksThatFit(t, forBlocks(33) + 1), 33);
  assert.equal(blocksThatFit(t, forBlocks(200)), 64);
  const c = chooseAutoTier(forBlocks(40) + 1)!;
  assert.equal(c.tier, "network");
  assert.equal(c.numBlocks, 40);
  assert.equal(chooseAutoTier(forBlocks(15))?.tier, "ultra");
  assert.equal(chooseAutoTier(forBlocks(40) + 1, 2)?.numBlocks, 2, "NUM_BLOCKS overrides the sizing");
});
