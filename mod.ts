/**
 * plumise as a library: configuration, errors, metrics and the parts of the node.
 *
 * ```ts
 * import { resolveConfig } from "./mod.ts";
 * const { config } = resolveConfig({ env: { NUM_BLOCKS: "4" }, tier: "lite" });
 * console.log(config.model, config.numBlocks); // bigscience/bloom-560m 4
 * ```
 * @module
 */
export * from "./lib/errors.ts";
export * from "./lib/config/mod.ts";
export { Logger, memoryLogger, silentLogger } from "./lib/util/logger.ts";
export type { LogLevel, LogRecord } from "./lib/util/logger.ts";
export { Metrics } from "./lib/util/metrics.ts";
export type { ContributionSnapshot } from "./lib/util/metrics.ts";
export { PROTOCOL_VERSION, VERSION } from "./lib/util/version.ts";
export { runCli } from "./lib/cli/cli.ts";
