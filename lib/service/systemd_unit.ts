/**
 * The systemd unit of a plumise node: `ExecStart=<binary> serve` with every setting in the
 * environment file (no secret on a command line), a dynamic user with its state and cache
 * directories, restart on failure, a stop timeout longer than `SHUTDOWN_GRACE`, and every
 * sandboxing setting the node can live with. Each one was checked against what the node touches
 * (docs/operations.md, "The unit"):
 *
 * - no `MemoryDenyWriteExecute=`: V8's JIT maps memory writable and executable;
 * - no `ProcSubset=pid`: memory and CPU counts come from `/proc/meminfo`, `/proc/cpuinfo`,
 *   `/proc/stat`; the runtime reads `/proc/self/smaps` (huge pages);
 * - `AF_NETLINK` allowed: listing network interfaces (`getifaddrs`) asks the kernel over netlink;
 * - the cache directory is not `noexec`: onnxruntime's library is copied there and `dlopen`ed;
 * - `@system-service` keeps `sched_setaffinity` (CPU pinning) and `madvise` (huge pages).
 * @module
 */

import { ConfigError, type ErrorCode } from "../errors.ts";

/** Error codes of the service commands (their meanings: `ERROR_CODES`, lib/error_codes.ts). */
export const SERVICE_ERROR_CODES = {
  UNSUPPORTED_OS: "SERVICE_UNSUPPORTED_OS",
  BINARY_INVALID: "SERVICE_BINARY_INVALID",
  KEYSTORE_INVALID: "SERVICE_KEYSTORE_INVALID",
  NO_WALLET: "SERVICE_NO_WALLET",
  CONFIG_INVALID: "SERVICE_CONFIG_INVALID",
  NOT_PERMITTED: "SERVICE_NOT_PERMITTED",
  SYSTEMCTL_FAILED: "SERVICE_SYSTEMCTL_FAILED",
} as const satisfies Record<string, ErrorCode>;

/**
 * Paths the unit names, checked before anything is rendered (`renderUnit` checks them too): absolute, on one line; the binary
 * without characters systemd refuses or does not unescape in an executable's name (quotes, `\`,
 * `$`, control characters; `%` is escaped); the keystore without `:` or spaces (LoadCredential= splits on them).
 */
export function checkUnitPaths(o: { binary: string; envFile: string; keystore?: string }): void {
  const bad = (code: ErrorCode, what: string, p: string, why: string, hint: string) =>
    new ConfigError(code, `${what} path ${JSON.stringify(p)} ${why}`, { hint });
  const move = "move it to a path of letters, digits and / . _ - (e.g. /usr/local/bin/plumise)";
  for (
    const [code, what, p] of [
      [SERVICE_ERROR_CODES.BINARY_INVALID, "the binary", o.binary],
      [SERVICE_ERROR_CODES.CONFIG_INVALID, "the env file", o.envFile],
      [SERVICE_ERROR_CODES.KEYSTORE_INVALID, "the keystore", o.keystore],
    ] as const
  ) {
    if (p !== undefined && !p.startsWith("/")) {
      throw bad(code, what, p, "is not absolute", "give the full path");
    }
  }
  // deno-lint-ignore no-control-regex
  const control = /[\x00-\x1f\x7f]/;
  if (/["'\\$]/.test(o.binary) || control.test(o.binary)) {
    throw bad(
      SERVICE_ERROR_CODES.BINARY_INVALID,
      "the binary",
      o.binary,
      "has characters systemd cannot run",
      move,
    );
  }
  if (control.test(o.envFile)) {
    throw bad(
      SERVICE_ERROR_CODES.CONFIG_INVALID,
      "the env file",
      o.envFile,
      "holds a control character",
      move,
    );
  }
  if (o.keystore !== undefined && (/[:\s]/.test(o.keystore) || control.test(o.keystore))) {
    throw bad(
      SERVICE_ERROR_CODES.KEYSTORE_INVALID,
      "the keystore",
      o.keystore,
      "holds ':', a space or a control character (systemd's LoadCredential= cannot name it)",
      "move the keystore to a path without them, e.g. /etc/plumise/keystore.json",
    );
  }
}

/** What the unit is made of. */
export interface UnitOptions {
  /** Absolute path of the plumise binary (ExecStart's program). */
  binary: string;
  /** Absolute path of the environment file. */
  envFile: string;
  /** Absolute path of an encrypted keystore, handed in with `LoadCredential=` (readable by root only is fine). */
  keystore?: string;
  /** SHUTDOWN_GRACE in seconds (the stop timeout is longer). */
  shutdownGraceSeconds: number;
  /** Version of the systemd that will run the unit (exponential restart back-off needs ≥ 254). */
  systemdVersion?: number;
  /** The plumise version that wrote it (a comment). */
  writtenBy: string;
}

/** Name of the unit file. */
export const UNIT_NAME = "plumise.service";
/** Seconds systemd waits beyond SHUTDOWN_GRACE before it kills the node. */
export const STOP_MARGIN_SECONDS = 20;

/**
 * Directories the unit's sandbox keeps from the node: `ProtectHome=yes` makes the first three
 * inaccessible, `PrivateTmp=yes` gives the unit fresh, empty ones of the last two. A binary there
 * cannot be started (status 203/EXEC). The env file and the keystore are read by systemd itself
 * before the sandbox exists, so they may lie anywhere.
 */
export const HIDDEN_FROM_UNIT = ["/home", "/root", "/run/user", "/tmp", "/var/tmp"] as const;

/** The directory of `HIDDEN_FROM_UNIT` that absolute `path` lies in, if any. */
export function hiddenFromUnit(path: string): string | undefined {
  return HIDDEN_FROM_UNIT.find((d) => path === d || path.startsWith(`${d}/`));
}

/** `systemd.exec` quoting of one command-line word or path. */
function quoteWord(s: string): string {
  // `%` is a specifier (systemd would expand `%v` in a path): never bare, doubled when quoted
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(s)) return s;
  return `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/%/g, "%%").replace(/\$/g, "$$$$")}"`;
}

/** Paths in unit settings where specifiers (`%`) are expanded. */
function escapePath(s: string): string {
  return s.replace(/%/g, "%%");
}

/** The unit file's text. */
export function renderUnit(o: UnitOptions): string {
  checkUnitPaths(o);
  const stopTimeout = Math.max(30, o.shutdownGraceSeconds + STOP_MARGIN_SECONDS);
  const backoff = (o.systemdVersion ?? 0) >= 254
    ? ["RestartSec=5s", "RestartSteps=10", "RestartMaxDelaySec=5min"]
    : ["RestartSec=15s"];
  const lines = [
    `# Written by \`plumise service install\` (plumise ${o.writtenBy}); settings: ${o.envFile}`,
    "# Re-run `plumise service install` after changing SHUTDOWN_GRACE (TimeoutStopSec follows it).",
    "[Unit]",
    "Description=Plumise inference node",
    "Wants=network-online.target",
    "After=network-online.target",
    "StartLimitIntervalSec=0",
    "",
    "[Service]",
    "Type=exec",
    `ExecStart=${quoteWord(o.binary)} serve`,
    `EnvironmentFile=${escapePath(o.envFile)}`,
    "Environment=PLUMISE_DATA_DIR=%S/plumise HF_HOME=%C/plumise/huggingface XDG_CACHE_HOME=%C HOME=%S/plumise",
    // not `/`: `serve` reads `./.env` when there is one, and a stray `/.env` is not the operator's
    "WorkingDirectory=%S/plumise",
    ...(o.keystore
      ? [`LoadCredential=keystore:${escapePath(o.keystore)}`, "Environment=PLUMISE_KEYSTORE=%d/keystore"]
      : []),
    "DynamicUser=yes",
    "StateDirectory=plumise",
    "StateDirectoryMode=0700",
    "CacheDirectory=plumise",
    "CacheDirectoryMode=0700",
    "Restart=on-failure",
    ...backoff,
    "# exit 2 is a configuration error: restarting cannot fix it",
    "RestartPreventExitStatus=2",
    `TimeoutStopSec=${stopTimeout}s`,
    "LimitNOFILE=65536",
    "",
    "# Sandboxing (see docs/operations.md). MemoryDenyWriteExecute stays off: V8's JIT needs W+X memory.",
    "NoNewPrivileges=yes",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateUsers=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "RemoveIPC=yes",
    "KeyringMode=private",
    "DevicePolicy=closed",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @mount @obsolete @cpu-emulation @debug @raw-io @reboot @swap @clock @module",
    "SystemCallErrorNumber=EPERM",
    "UMask=0077",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
  ];
  return lines.join("\n") + "\n";
}
