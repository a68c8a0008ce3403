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
  for (
    const [what, p] of [["binary", o.binary], ["env file", o.envFile], ["keystore", o.keystore]] as const
  ) {
    if (p !== undefined && !p.startsWith("/")) throw new Error(`the ${what} path must be absolute: ${p}`);
    if (p !== undefined && /[\n\r]/.test(p)) throw new Error(`the ${what} path holds a line break`);
  }
  if (o.keystore && /[:\s]/.test(o.keystore)) {
    throw new Error(`the keystore path cannot hold ':' or spaces (LoadCredential=): ${o.keystore}`);
  }
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
