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
 * - `--allow-ffi`: onnxruntime's library, loaded from the cache directory (chosen at run time:
 *   XDG_CACHE_HOME), and libc for CPU pinning and huge pages.
 * - `--allow-run=systemctl`: `plumise service install|uninstall|status`, and nothing else.
 * - `--allow-sys=…`: only the calls used: network interfaces (listening on 0.0.0.0), memory
 *   (tier auto, cache budget), cpu count, host name and OS release (identify/agent version),
 *   home directory (default paths of Node libraries), free disk space (`plumise doctor`).
 * @module
 */
export const SYS_CALLS = [
  "networkInterfaces",
  "systemMemoryInfo",
  "cpus",
  "hostname",
  "osRelease",
  "homedir",
  "statfs",
] as const;

export const BINARY_PERMISSIONS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-ffi",
  "--allow-run=systemctl",
  `--allow-sys=${SYS_CALLS.join(",")}`,
];
