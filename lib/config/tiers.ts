/**
 * The tier table: what `plumise serve --tier NAME` serves by default, and the `auto` choice. The
 * `network` tier serves the Plumise network's own model with as many blocks as fit in memory.
 * @module
 */
import type { TierName, WeightFormat } from "./types.ts";

export interface TierSpec {
  readonly name: TierName;
  readonly model: string;
  /**
   * Blocks served. For a tier `sizedFromMemory` it is the least `auto` accepts: the served count
   * is as many as fit in memory (`blocksThatFit`), at most `totalBlocks`.
   */
  readonly numBlocks: number;
  readonly weights: WeightFormat;
  /** Blocks in the whole model. */
  readonly totalBlocks: number;
  /** Bytes one block needs in memory with `weights` (weights + a modest KV cache reserve). */
  readonly perBlockBytes: number;
  /** Serve as many blocks as fit in the available memory (the `network` tier). */
  readonly sizedFromMemory?: boolean;
  readonly description: string;
}

const MB = 1024 * 1024;

/**
 * Parameters of one transformer block of the tier's model (exact for these architectures up to the
 * norm weights): `qDim` = query heads × head_dim (the hidden size except in e.g. Qwen3-32B).
 */
function blockParams(
  hidden: number,
  intermediate: number,
  kvDim: number,
  gated: boolean,
  qDim = hidden,
): number {
  const attn = hidden * qDim * 2 + hidden * kvDim * 2; // q, o + k, v
  const mlp = hidden * intermediate * (gated ? 3 : 2);
  return attn + mlp;
}

/** int8 weights (1 byte/param + scales) plus 25% for activations and a small KV cache reserve. */
const int8Bytes = (params: number) => Math.ceil(params * 1.25);

export const TIERS: Readonly<Record<TierName, TierSpec>> = Object.freeze({
  lite: {
    name: "lite",
    model: "bigscience/bloom-560m",
    numBlocks: 2,
    weights: "int8",
    totalBlocks: 24,
    perBlockBytes: int8Bytes(blockParams(1024, 4096, 1024, false)),
    description: "BLOOM-560m, 2 of 24 blocks; any machine",
  },
  standard: {
    name: "standard",
    model: "bigscience/bloom-7b1",
    numBlocks: 4,
    weights: "int8",
    totalBlocks: 30,
    perBlockBytes: int8Bytes(blockParams(4096, 16384, 4096, false)),
    description: "BLOOM-7b1, 4 of 30 blocks; ≥ 4 GiB free",
  },
  pro: {
    name: "pro",
    model: "meta-llama/Llama-3.1-8B",
    numBlocks: 8,
    weights: "int8",
    totalBlocks: 32,
    perBlockBytes: int8Bytes(blockParams(4096, 14336, 1024, true)),
    description: "Llama-3.1-8B, 8 of 32 blocks; ≥ 8 GiB free",
  },
  ultra: {
    name: "ultra",
    model: "meta-llama/Llama-3.1-70B",
    numBlocks: 8,
    weights: "int8",
    totalBlocks: 80,
    perBlockBytes: int8Bytes(blockParams(8192, 28672, 1024, true)),
    description: "Llama-3.1-70B, 8 of 80 blocks; ≥ 24 GiB free",
  },
  network: {
    name: "network",
    // The model the Plumise network (its gateway and Oracle) runs: 64 blocks of hidden 5120,
    // 64 query heads and 8 KV heads of 128, intermediate 25600.
    model: "qwen/qwen3-32b",
    numBlocks: 16,
    weights: "int8",
    totalBlocks: 64,
    perBlockBytes: int8Bytes(blockParams(5120, 25600, 1024, true, 8192)),
    sizedFromMemory: true,
    description: "Qwen3-32B (the network's model), as many of 64 blocks as fit; auto: ≥ 16 blocks",
  },
});

/** Tiers by size; `auto` takes the last that fits. */
export const TIER_NAMES: readonly TierName[] = ["lite", "standard", "pro", "ultra", "network"];

/** Share of available memory the served blocks may take; the rest is the safety margin. */
export const AUTO_MEMORY_FRACTION = 0.6;
/** Memory the process needs besides the blocks (runtime, libp2p, buffers). */
export const BASE_PROCESS_BYTES = 300 * MB;

export interface AutoTierChoice {
  tier: TierName;
  /** Blocks to serve: the tier's, the override, or as many as fit (a tier `sizedFromMemory`). */
  numBlocks: number;
  reason: string;
}

/** How many blocks of `tier` fit in `AUTO_MEMORY_FRACTION` of `availableBytes`, at most its total. */
export function blocksThatFit(tier: TierSpec, availableBytes: number): number {
  const budget = availableBytes * AUTO_MEMORY_FRACTION - BASE_PROCESS_BYTES;
  return Math.max(0, Math.min(tier.totalBlocks, Math.floor(budget / tier.perBlockBytes)));
}

/**
 * The blocks of a tier that sizes its span from memory, with the sentence that says why; undefined
 * when not one block fits.
 */
export function sizeTierFromMemory(
  tier: TierSpec,
  availableBytes: number,
): { numBlocks: number; reason: string } | undefined {
  const n = blocksThatFit(tier, availableBytes);
  if (n < 1) return undefined;
  return {
    numBlocks: n,
    reason: `tier ${tier.name}: ${n} of ${tier.model}'s ${tier.totalBlocks} blocks (${
      fmtBytes(tier.perBlockBytes)
    } each at ${tier.weights}, + ${fmtBytes(BASE_PROCESS_BYTES)}) fit in ${
      Math.round(AUTO_MEMORY_FRACTION * 100)
    }% of ${fmtBytes(availableBytes)} available`,
  };
}

const fmtBytes = (n: number) =>
  n >= 1024 * MB ? `${(n / (1024 * MB)).toFixed(1)} GiB` : `${Math.round(n / MB)} MiB`;

/**
 * The largest tier whose `perBlockBytes × numBlocks` (+ process overhead) fits in
 * `AUTO_MEMORY_FRACTION` of `availableBytes`; undefined when not even `lite` fits. The `network`
 * tier counts when its least span (16 of Qwen3-32B's 64 blocks) fits, and then serves all that fit.
 */
export function chooseAutoTier(
  availableBytes: number,
  numBlocksOverride?: number,
): AutoTierChoice | undefined {
  const budget = availableBytes * AUTO_MEMORY_FRACTION;
  let chosen: AutoTierChoice | undefined;
  for (const name of TIER_NAMES) {
    const t = TIERS[name];
    const blocks = numBlocksOverride ?? t.numBlocks;
    const need = t.perBlockBytes * blocks + BASE_PROCESS_BYTES;
    if (need <= budget) {
      // A tier sized from memory needs its least block count to fit, then takes all that fit.
      const served = numBlocksOverride ?? (t.sizedFromMemory ? blocksThatFit(t, availableBytes) : blocks);
      const servedNeed = t.perBlockBytes * served + BASE_PROCESS_BYTES;
      chosen = {
        tier: name,
        numBlocks: served,
        reason: `auto chose tier ${name} (${t.model}, ${served}${
          t.sizedFromMemory && numBlocksOverride === undefined ? ` of ${t.totalBlocks}` : ""
        } blocks × ${fmtBytes(t.perBlockBytes)} + ${fmtBytes(BASE_PROCESS_BYTES)} = ${
          fmtBytes(servedNeed)
        } fits in ${Math.round(AUTO_MEMORY_FRACTION * 100)}% of ${fmtBytes(availableBytes)} available)`,
      };
    } else if (chosen) {
      chosen.reason += `; ${name} would need ${fmtBytes(need)}`;
      break;
    }
  }
  return chosen;
}

export function describeBytes(n: number): string {
  return fmtBytes(n);
}
