/**
 * Starts a module as a child Deno process (`deno run --allow-all <module> <json>`), with piped
 * stdin/stdout and the parent's stderr: how the multi-process fixtures and the benchmark's span
 * processes run a copy of themselves.
 * @module
 */

/** Spawns `moduleUrl` (an `import.meta.url`) with `arg` as its one JSON argument. */
export function spawnModule(moduleUrl: string, arg: unknown): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL(moduleUrl).pathname, JSON.stringify(arg)],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}
