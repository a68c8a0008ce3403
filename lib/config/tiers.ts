/**
 * The tier table: what `plumise serve --tier NAME` serves by default, and the `auto` choice.
 * @module
 */
import type { TierName, WeightFormat } from "./types.ts";

export interface TierSpec {
  readonly name: TierName;
  readonly model: string;
  readonly numBlocks: number;
  readonly weights: WeightFormat;
  /** Blocks in the whole model. */
  readonly totalBlocks: number;
  /** Bytes one block needs in memory with `weights` (weights + a modest KV cache reserve). */
  readonly perBlockBytes: number;
  readonly description: string;
}

const MB = 1024 * 1024;

/** Parameters of one transformer block of the tier's model (exact for these architectures). */
function blockParams(hidden: number, intermediate: number, kvDim: number, gated: boolean): number {
  const attn = hidden * hidden * 2 + hidden * kvDim * 2; // q, o + k, v
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
});

export const TIER_NAMES: readonly TierName[] = ["lite", "standard", "pro", "ultra"];

/** Share of available memory the served blocks may take; the rest is the safety margin. */
export const AUTO_MEMORY_FRACTION = 0.6;
/** Memory the process needs besides the blocks (runtime, libp2p, buffers). */
export const BASE_PROCESS_BYTES = 300 * MB;

export interface AutoTierChoice {
  tier: TierName;
  reason: string;
}

const fmtBytes = (n: number) =>
  n >= 1024 * MB ? `${(n / (1024 * MB)).toFixed(1)} GiB` : `${Math.round(n / MB)} MiB`;

/**
 * The largest tier whose `perBlockBytes × numBlocks` (+ process overhead) fits in
 * `AUTO_MEMORY_FRACTION` of `availableBytes`; undefined when not even `lite` fits.
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
      chosen = {
        tier: name,
        reason: `auto chose tier ${name} (${t.model}, ${blocks} blocks × ${fmtBytes(t.perBlockBytes)} + ${
          fmtBytes(BASE_PROCESS_BYTES)
        } = ${fmtBytes(need)} fits in ${Math.round(AUTO_MEMORY_FRACTION * 100)}% of ${
          fmtBytes(availableBytes)
        } available)`,
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
