/**
 * `plumise bench`'s work: load a span of the configured model on this machine, measure it the way
 * `serve` does before announcing (span_speed.ts), store the figures in the throughput cache that
 * `serve` reads, and unload. Never joins the swarm and never binds the direct port.
 * @module
 */
import type { Config } from "../config/types.ts";
import type { Logger } from "../util/logger.ts";
import { pinnedSpan } from "./pinned_span.ts";
import { createRuntimePart, type SpanMeasurement } from "./runtime_part.ts";

export interface BenchReport extends SpanMeasurement {
  readonly model: string;
  readonly start: number;
  readonly end: number;
  /** The model's block count. */
  readonly totalBlocks: number;
  readonly weights: Config["weights"];
  readonly threads: number;
}

/**
 * The span to measure: `--block-indices` when given (checked against the model), else the first
 * `numBlocks` blocks (the size `serve` would load; all blocks measure alike).
 */
export function benchSpan(config: Config, totalBlocks: number): { start: number; end: number } {
  const pinned = pinnedSpan(config, totalBlocks);
  if (pinned) return pinned;
  return { start: 0, end: Math.min(config.numBlocks, totalBlocks) };
}

/** Loads the span, measures it, caches the figures, unloads. */
export async function benchNode(
  config: Config,
  logger: Logger,
  { signal }: { signal: AbortSignal },
): Promise<BenchReport> {
  // no direct port: a benchmark must not take the port a running `serve` holds
  const part = createRuntimePart({ ...config, directPort: -1 }, logger);
  try {
    const totalBlocks = await part.totalBlocks({ signal });
    const span = benchSpan(config, totalBlocks);
    await part.load(span, { signal });
    const m = await part.measure({ signal });
    return {
      ...m,
      model: config.model,
      ...span,
      totalBlocks,
      weights: config.weights,
      threads: config.threads,
    };
  } finally {
    await part.stop();
  }
}
