/**
 * The span an operator pinned with `--block-indices`, checked against the model's block count.
 * @module
 */
import type { Config } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import type { NodeSpan } from "./types.ts";

/** `config.blockIndices` when set (throws `BLOCK_INDICES_INVALID` past the model's end), else undefined. */
export function pinnedSpan(config: Pick<Config, "blockIndices">, totalBlocks: number): NodeSpan | undefined {
  if (!config.blockIndices) return undefined;
  const { start, end } = config.blockIndices;
  if (end > totalBlocks) {
    throw new ConfigError(
      "BLOCK_INDICES_INVALID",
      `--block-indices ${start}:${end} is past the model's ${totalBlocks} blocks`,
      { hint: `choose a:b with 0 ≤ a < b ≤ ${totalBlocks}` },
    );
  }
  return { start, end };
}
