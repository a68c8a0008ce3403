/**
 * The V8 flags the plumise binary embeds (`deno compile`) and that `deno task serve`, the CLI
 * contract tests and the benchmarks run the node with (a test keeps deno.json's tasks and the
 * compile arguments in step with it).
 *
 * - `--max-semi-space-size=4` (MiB): each isolate's young generation (the main thread's and every
 *   Worker's: the runtime's, the client head's) stops growing at 8 MiB. V8 doubles it, up to
 *   64 MiB per isolate by default, whenever scavenges keep finding survivors; under a steady load
 *   of generations it kept doubling for minutes, and a node serving the API holds three isolates:
 *   its resident memory grew by a hundred MB and more while every JS heap and native object count
 *   stayed flat (docs/benchmarks.md, "Soak"). What a decode step allocates dies young, so the
 *   smaller young generation means more frequent scavenges of about the same cost each; the soak's
 *   tokens/s stayed within its run-to-run spread.
 * @module
 */

/** Young generation cap per isolate, in MiB per semi-space. */
export const MAX_SEMI_SPACE_MIB = 4;

export const BINARY_V8_FLAGS: readonly string[] = [`--v8-flags=--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`];
