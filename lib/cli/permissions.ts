/**
 * The permission set the plumise binary embeds (`deno compile`) and that `deno task serve`
 * and the CLI contract tests run with. One list, used everywhere; a test keeps deno.json's
 * `serve` task equal to it.
 *
 * - `--allow-net`: swarm (libp2p), chain RPC, Oracle, model hub, HTTP API.
 * - `--allow-read` / `--allow-write`: not path-scoped, because the data directory, HF cache,
 *   keystore, .env and local checkpoint paths are chosen by the user at run time (HOME, HF_HOME,
 *   flags) and Deno's flags cannot expand them; the binary only touches the paths it is given.
 * - `--allow-env`: config; a libp2p dependency enumerates the whole environment.
 * - `--allow-ffi`: onnxruntime-node's native addon (a compiled binary extracts it to a temporary
 *   directory whose path is not known ahead, so it cannot be path-scoped there either).
 * - `--allow-sys=…`: only the calls used: network interfaces (listening on 0.0.0.0), memory
 *   (tier auto, cache budget), cpu count, host name and OS release (identify/agent version),
 *   home directory (default paths of Node libraries).
 * @module
 */
export const SYS_CALLS = [
  "networkInterfaces",
  "systemMemoryInfo",
  "cpus",
  "hostname",
  "osRelease",
  "homedir",
] as const;

export const BINARY_PERMISSIONS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  `--allow-sys=${SYS_CALLS.join(",")}`,
];
