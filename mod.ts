/**
 * plumise as a library: configuration, errors, metrics and the parts of the node.
 *
 * ```ts
 * import { resolveConfig } from "./mod.ts";
 * const { config } = resolveConfig({ env: { NUM_BLOCKS: "4" }, tier: "lite" });
 * console.log(config.model, config.numBlocks); // bigscience/bloom-560m 4
 * ```
 *
 * The swarm client (connect, generate, chat, inference sessions) is documented with a runnable
 * example in lib/swarm/client/mod.ts; the node itself is `createNode(config)` + `runNode`.
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
export { createNode, type NodeOptions, PlumiseNode, runNode } from "./lib/node/node.ts";
export {
  createBlockRuntime,
  createClientHead,
  loadTokenizer,
  OnnxBlockRuntime,
  OnnxClientHead,
  resolveCheckpoint,
} from "./lib/runtime/mod.ts";
export type { BlockRuntime, ClientHead, Tokenizer } from "./lib/runtime/types.ts";
export * from "./lib/swarm/client/mod.ts";
