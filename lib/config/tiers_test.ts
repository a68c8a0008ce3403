import assert from "node:assert/strict";
import { AUTO_MEMORY_FRACTION, BASE_PROCESS_BYTES, chooseAutoTier, TIER_NAMES, TIERS } from "./tiers.ts";

Deno.test("tier table: models and block counts", () => {
  assert.equal(TIERS.lite.model, "bigscience/bloom-560m");
  assert.equal(TIERS.lite.numBlocks, 2);
  assert.equal(TIERS.standard.model, "bigscience/bloom-7b1");
  assert.equal(TIERS.pro.model, "meta-llama/Llama-3.1-8B");
  assert.equal(TIERS.ultra.model, "meta-llama/Llama-3.1-70B");
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
