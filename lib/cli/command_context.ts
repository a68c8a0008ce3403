/**
 * What every CLI command gets: config resolution from its options (+ env, .env, tier),
 * a logger, output functions and a signal that aborts on SIGINT/SIGTERM.
 * @module
 */
import type { Config, ResolvedConfig } from "../config/types.ts";
import type { Logger } from "../util/logger.ts";

export interface CommandContext {
  /**
   * Resolves the configuration from a command's parsed options (commander's `opts()`,
   * including the global ones), the process environment and the .env file.
   * Throws `ConfigError` (exit code 2) listing every problem.
   */
  resolve(opts: Record<string, unknown>): ResolvedConfig;
  /**
   * A logger honouring the config's level/JSON settings (stderr). `quiet`: a one-shot command's
   * (generate, swarm, register, claim, blocks), which logs warnings and errors only unless
   * LOG_LEVEL is set or `-v` given, so its output is its answer, not the node's inner workings.
   */
  logger(config?: Config, options?: { quiet?: boolean }): Logger;
  /** Writes `text` and a newline to standard output. */
  stdout(text: string): void;
  /** Writes `text` and a newline to standard error. */
  stderr(text: string): void;
  /** Writes raw text to standard output (no newline), e.g. streamed tokens. */
  write(text: string): void;
  /** Aborted on the first SIGINT/SIGTERM. */
  readonly signal: AbortSignal;
  /** Standard output is a terminal. */
  readonly isTerminal: boolean;
  /** `-v` was given: errors print their cause chain, the log level is debug. */
  readonly verbose: boolean;
  /** Sets the exit code the command ends with when it returns normally (default 0). */
  setExitCode(code: number): void;
  /** Process environment snapshot (read-only; config/ is the place that interprets it). */
  readonly env: Readonly<Record<string, string>>;
}
