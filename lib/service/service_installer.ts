/**
 * `plumise service install|uninstall|status` (Linux, systemd): writes the unit and the
 * environment file, creates nothing else by hand (systemd creates the state and cache
 * directories for the dynamic user), reloads systemd, enables and (re)starts the node.
 * The file system root and the `systemctl` runner are injected, so everything but systemd
 * itself is tested without root.
 * @module
 */
import { dirname, join } from "node:path";
import { resolveConfig } from "../config/resolve_config.ts";
import { TIER_NAMES } from "../config/tiers.ts";
import {
  ConfigError,
  type ErrorCode,
  errorMessage,
  PlumiseError,
  redact,
  registerSecret,
} from "../errors.ts";
import { VERSION } from "../util/version.ts";
import { mergeEnvFile, parseEnvFile } from "./env_file.ts";
import {
  checkUnitPaths,
  hiddenFromUnit,
  renderUnit,
  SERVICE_ERROR_CODES,
  UNIT_NAME,
} from "./systemd_unit.ts";
import { writeTextAtomic } from "../util/write_text_atomic.ts";

export { SERVICE_ERROR_CODES } from "./systemd_unit.ts";

export const DEFAULT_ENV_FILE = "/etc/plumise/plumise.env";
export const UNIT_DIR = "/etc/systemd/system";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where the service lives and how systemd is reached. */
export interface ServiceHost {
  /** Prefix of every system path ("/" on a real machine; a temporary directory in tests). */
  root: string;
  /** Runs `systemctl ARGS`. */
  systemctl(args: string[]): Promise<CommandResult>;
}

/** A host that is this machine. */
export function systemHost(): ServiceHost {
  return {
    root: "/",
    async systemctl(args) {
      const out = await new Deno.Command("systemctl", { args, stdout: "piped", stderr: "piped" }).output();
      const dec = new TextDecoder();
      return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    },
  };
}

export interface InstallOptions {
  /** Absolute path of the plumise binary to run. */
  binary: string;
  tier?: string;
  /** Keystore path (handed to the service with LoadCredential=). */
  keystore?: string;
  /** Its password, written to the env file (mode 0600). */
  keystorePassword?: string;
  /** A raw key instead of a keystore, written to the env file (mode 0600). */
  privateKey?: string;
  /** Environment file path (default /etc/plumise/plumise.env). */
  envFile?: string;
  /** Available memory, to check a `--tier auto` setting now rather than in a restart loop. */
  availableMemoryBytes?: number;
}

export interface InstallPlan {
  unitPath: string;
  envFilePath: string;
  unit: string;
  /** The env file's new text (secrets included: never print it). */
  envText: string;
  /** Names of the keys in the env file (values are not shown). */
  envKeys: string[];
  /** systemctl calls it makes, in order. */
  systemctl: string[][];
  /** Where the binary really lies when the unit's sandbox hides it (`hiddenFromUnit`): no install. */
  binaryHidden?: { path: string; dir: string };
}

const TIERS: readonly string[] = [...TIER_NAMES, "auto"];

function hostPath(host: ServiceHost, p: string): string {
  return host.root === "/" ? p : join(host.root, p);
}

async function readOptional(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return "";
    throw new ConfigError(SERVICE_ERROR_CODES.CONFIG_INVALID, `cannot read ${path}: ${errorMessage(err)}`, {
      hint: "it must be a readable file (the env file or the installed unit)",
      cause: err,
    });
  }
}

/** The systemd version `systemctl --version` reports, or undefined. */
export async function systemdVersion(host: ServiceHost): Promise<number | undefined> {
  try {
    const r = await host.systemctl(["--version"]);
    const m = r.stdout.match(/^systemd (\d+)/);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

async function checkFile(path: string, what: string, code: ErrorCode, hint: string): Promise<void> {
  if (!path.startsWith("/")) {
    throw new ConfigError(code, `${what} ${path} is not an absolute path`, { hint: "give the full path" });
  }
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(path);
  } catch (err) {
    throw new ConfigError(code, `${what} ${path}: ${errorMessage(err)}`, { hint, cause: err });
  }
  if (!st.isFile) throw new ConfigError(code, `${what} ${path} is not a file`, { hint });
}

/** Everything `install` would write, computed without writing. */
export async function planInstall(host: ServiceHost, o: InstallOptions): Promise<InstallPlan> {
  const envFilePath = o.envFile ?? DEFAULT_ENV_FILE;
  if (!envFilePath.startsWith("/")) {
    throw new ConfigError(
      SERVICE_ERROR_CODES.CONFIG_INVALID,
      `--env-file ${envFilePath} is not an absolute path`,
      {
        hint: `give the full path, e.g. ${DEFAULT_ENV_FILE}`,
      },
    );
  }
  await checkFile(
    o.binary,
    "the binary",
    SERVICE_ERROR_CODES.BINARY_INVALID,
    "pass --binary with the path of the installed plumise binary (e.g. /usr/local/bin/plumise)",
  );
  checkUnitPaths({ binary: o.binary, envFile: envFilePath, keystore: o.keystore });
  if (o.tier !== undefined) o = { ...o, tier: o.tier.toLowerCase() };
  if (o.tier !== undefined && !TIERS.includes(o.tier)) {
    throw new ConfigError(SERVICE_ERROR_CODES.CONFIG_INVALID, `--tier ${o.tier} is not a tier`, {
      hint: `choose one of ${TIERS.join(", ")}`,
    });
  }
  if (o.keystore !== undefined) {
    await checkFile(
      o.keystore,
      "the keystore",
      SERVICE_ERROR_CODES.KEYSTORE_INVALID,
      "create one with `plumise wallet new --keystore /etc/plumise/keystore.json`",
    );
  }
  registerSecret(o.privateKey);
  registerSecret(o.keystorePassword);
  const unitPath = join(UNIT_DIR, UNIT_NAME);
  // installing again (an upgrade) keeps the keystore the unit already hands in, unless a key is
  // given now: that is a switch to the key (the keystore kept would silently win over it)
  const existingText = await readOptional(hostPath(host, envFilePath));
  const existing = parseEnvFile(existingText);
  // a keystore named in the env file is handed in like --keystore: the service (a dynamic user,
  // home directories hidden) could not read it from where it lies
  const fromFile = o.keystore ?? (o.privateKey ? undefined : existing.get("PLUMISE_KEYSTORE"));
  if (fromFile !== undefined && o.keystore === undefined) {
    checkUnitPaths({ binary: o.binary, envFile: envFilePath, keystore: fromFile });
    await checkFile(
      fromFile,
      `the keystore (PLUMISE_KEYSTORE in ${envFilePath})`,
      SERVICE_ERROR_CODES.KEYSTORE_INVALID,
      "fix PLUMISE_KEYSTORE in the env file, or pass --keystore",
    );
  }
  const keystore = fromFile ?? (o.privateKey ? undefined : (await readOptional(hostPath(host, unitPath)))
    .match(/^LoadCredential=keystore:(.+)$/m)?.[1]?.replace(/%%/g, "%"));

  const set = new Map<string, string>();
  const remove: string[] = [];
  if (o.tier) set.set("PLUMISE_TIER", o.tier);
  if (keystore) {
    // the unit hands the keystore in; a key or a keystore path in the file would override it
    remove.push("PLUMISE_PRIVATE_KEY", "PLUMISE_KEYSTORE");
    if (o.keystorePassword !== undefined) set.set("PLUMISE_KEYSTORE_PASSWORD", o.keystorePassword);
  } else if (o.privateKey) {
    set.set("PLUMISE_PRIVATE_KEY", o.privateKey);
    remove.push("PLUMISE_KEYSTORE", "PLUMISE_KEYSTORE_PASSWORD");
  }
  const envText = mergeEnvFile(
    existingText,
    set,
    remove,
    "# plumise service settings (mode 0600: it holds the wallet secret). Keys: see `plumise config --help`.",
  );
  const env = Object.fromEntries(parseEnvFile(envText));
  const offline = /^(1|true|yes|on)$/i.test(env.PLUMISE_OFFLINE ?? "");
  const hasKeystore = Boolean(keystore ?? existing.get("PLUMISE_KEYSTORE"));
  if (!offline && !env.PLUMISE_PRIVATE_KEY && !hasKeystore) {
    throw new ConfigError(
      SERVICE_ERROR_CODES.NO_WALLET,
      "the service has no wallet: no keystore and no key",
      {
        hint: "create one with `plumise wallet new --keystore /etc/plumise/keystore.json` and pass " +
          "--keystore /etc/plumise/keystore.json (or set PLUMISE_OFFLINE=true in the env file for a private swarm)",
      },
    );
  }
  if (hasKeystore && !env.PLUMISE_KEYSTORE_PASSWORD && !offline) {
    throw new ConfigError(SERVICE_ERROR_CODES.NO_WALLET, "no password for the keystore", {
      hint:
        "set PLUMISE_KEYSTORE_PASSWORD when installing (or run on a terminal to be asked); it goes to the env file",
    });
  }
  // the settings must resolve now, not in a restart loop later
  let grace = 10;
  try {
    const { config } = resolveConfig({
      flags: {},
      env: { ...env, ...(keystore ? { PLUMISE_KEYSTORE: keystore } : {}) },
      dotenv: {},
      system: { availableMemoryBytes: o.availableMemoryBytes ?? NaN },
    });
    grace = config.shutdownGrace;
  } catch (err) {
    if (err instanceof ConfigError) {
      throw new ConfigError(
        SERVICE_ERROR_CODES.CONFIG_INVALID,
        `the service settings in ${envFilePath} do not resolve: ${err.message}`,
        {
          hint: err.hint || `fix ${envFilePath} and run install again`,
          problems: [...err.problems],
          cause: err,
        },
      );
    }
    throw err;
  }
  // on the real system only: tests install binaries of temporary directories into a root of their own
  const real = host.root === "/" ? await Deno.realPath(o.binary) : o.binary;
  const hiddenIn = host.root === "/" ? hiddenFromUnit(real) : undefined;
  const unit = renderUnit({
    binary: o.binary,
    envFile: envFilePath,
    keystore,
    shutdownGraceSeconds: grace,
    systemdVersion: await systemdVersion(host),
    writtenBy: VERSION,
  });
  return {
    unitPath,
    envFilePath,
    unit,
    envText,
    envKeys: Object.keys(env),
    systemctl: [["daemon-reload"], ["enable", UNIT_NAME], ["restart", UNIT_NAME]],
    ...(hiddenIn ? { binaryHidden: { path: real, dir: hiddenIn } } : {}),
  };
}

/** Why `plan` cannot be installed as it is, if it cannot (the dry run prints it as a warning). */
export function planProblem(plan: InstallPlan): ConfigError | undefined {
  const h = plan.binaryHidden;
  if (!h) return undefined;
  return new ConfigError(
    SERVICE_ERROR_CODES.BINARY_INVALID,
    `the binary ${h.path} lies under ${h.dir}, which the service's sandbox hides (ProtectHome=, PrivateTmp=)`,
    {
      hint:
        "copy it out first: sudo install -m 0755 <binary> /usr/local/bin/plumise, then --binary /usr/local/bin/plumise",
    },
  );
}

function notPermitted(path: string, err: unknown): PlumiseError {
  return new PlumiseError(SERVICE_ERROR_CODES.NOT_PERMITTED, `cannot write ${path}: ${errorMessage(err)}`, {
    hint: "run it as root: sudo plumise service install …",
    cause: err,
  });
}

/** Writes `text` to `path` atomically with `mode` (a temporary file renamed into place). */
async function writeAtomic(path: string, text: string, mode: number): Promise<void> {
  try {
    await Deno.mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await writeTextAtomic(path, text, { mode });
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
      throw notPermitted(path, err);
    }
    throw err;
  }
}

async function systemctlOrThrow(host: ServiceHost, args: string[]): Promise<void> {
  let r: CommandResult;
  try {
    r = await host.systemctl(args);
  } catch (err) {
    throw new PlumiseError(
      SERVICE_ERROR_CODES.SYSTEMCTL_FAILED,
      `systemctl ${args.join(" ")}: ${errorMessage(err)}`,
      {
        hint:
          "this command needs systemd (systemctl on the PATH); elsewhere run `plumise serve` under your supervisor",
        cause: err,
      },
    );
  }
  if (r.code !== 0) {
    throw new PlumiseError(
      SERVICE_ERROR_CODES.SYSTEMCTL_FAILED,
      `systemctl ${args.join(" ")} failed (exit ${r.code}): ${redact(r.stderr.trim() || r.stdout.trim())}`,
      { hint: `see \`journalctl -u ${UNIT_NAME}\` and \`systemctl status ${UNIT_NAME}\`` },
    );
  }
}

/**
 * Carries out a plan: env file (0600), unit (0644), daemon-reload, enable, restart. systemctl
 * is asked first, and whether systemd runs, so a machine without it gets no files it cannot use.
 */
export async function applyInstall(host: ServiceHost, plan: InstallPlan): Promise<void> {
  const problem = planProblem(plan);
  if (problem) throw problem;
  await systemctlOrThrow(host, ["--version"]);
  // systemctl installed is not systemd running (a container, WSL): sd_booted(3)'s own test
  if (!(await Deno.stat(hostPath(host, "/run/systemd/system")).then((s) => s.isDirectory, () => false))) {
    throw new PlumiseError(SERVICE_ERROR_CODES.SYSTEMCTL_FAILED, "systemd is not running on this machine", {
      hint: "no /run/systemd/system: run `plumise serve` under this machine's supervisor (or Docker) instead",
    });
  }
  await writeAtomic(hostPath(host, plan.envFilePath), plan.envText, 0o600);
  await writeAtomic(hostPath(host, plan.unitPath), plan.unit, 0o644);
  for (const args of plan.systemctl) await systemctlOrThrow(host, args);
}

export interface UninstallResult {
  removed: string[];
  kept: string[];
}

/** The env file an installed unit reads (EnvironmentFile=), if any. */
function unitEnvFileOf(unitText: string | undefined): string | undefined {
  return /^EnvironmentFile=-?(.+)$/m.exec(unitText ?? "")?.[1]?.replace(/%%/g, "%");
}

/** Stops and disables the node, removes the unit; `purge` also removes the env file and the node's state and cache. */
export async function uninstall(
  host: ServiceHost,
  o: { envFile?: string; purge?: boolean } = {},
): Promise<UninstallResult> {
  const unitPath = join(UNIT_DIR, UNIT_NAME);
  const removed: string[] = [];
  const kept: string[] = [];
  const unitText = await Deno.readTextFile(hostPath(host, unitPath)).catch(() => undefined);
  const unitExists = unitText !== undefined;
  // --purge removes the env file the installed unit reads (or the default one when no unit is left),
  // never another file --env-file happens to name (a checkout's .env, with its wallet key)
  const unitEnvFile = unitEnvFileOf(unitText);
  // without --env-file, the unit's own (an install with a custom one); with it, only when it is that
  const envFile = o.envFile ?? unitEnvFile ?? DEFAULT_ENV_FILE;
  const ours = o.envFile === undefined || o.envFile === (unitEnvFile ?? DEFAULT_ENV_FILE);
  if (unitExists) await systemctlOrThrow(host, ["disable", "--now", UNIT_NAME]);
  const rm = async (p: string, recursive = false) => {
    try {
      await Deno.remove(hostPath(host, p), { recursive });
      removed.push(p);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
        throw notPermitted(p, err);
      }
      throw err;
    }
  };
  await rm(unitPath);
  if (unitExists) await systemctlOrThrow(host, ["daemon-reload"]);
  const stateDirs = [
    "/var/lib/plumise",
    "/var/lib/private/plumise",
    "/var/cache/plumise",
    "/var/cache/private/plumise",
  ];
  if (o.purge) {
    if (ours) await rm(envFile);
    else kept.push(`${envFile} (not the env file of the installed service)`);
    for (const d of stateDirs) await rm(d, true);
  } else {
    kept.push(
      envFile,
      "/var/lib/plumise (identity, throughput cache)",
      "/var/cache/plumise (models, engine)",
    );
  }
  return { removed, kept };
}

export interface ServiceStatus {
  installed: boolean;
  unitPath: string;
  /** systemd's view (`systemctl show`), when it answered. */
  properties: Record<string, string>;
  active: boolean;
  envFile: string;
  /** The env file's mode (octal text), or why it is not there. */
  envFileMode?: string;
  problems: string[];
}

const SHOW_PROPS = [
  "LoadState",
  "ActiveState",
  "SubState",
  "UnitFileState",
  "MainPID",
  "NRestarts",
  "ActiveEnterTimestamp",
  "ExecMainStatus",
];

/** The unit's state, the env file's mode, and what is wrong with them. */
export async function serviceStatus(host: ServiceHost, o: { envFile?: string } = {}): Promise<ServiceStatus> {
  const unitPath = join(UNIT_DIR, UNIT_NAME);
  const unitText = await Deno.readTextFile(hostPath(host, unitPath)).catch(() => undefined);
  const envFile = o.envFile ?? unitEnvFileOf(unitText) ?? DEFAULT_ENV_FILE;
  const problems: string[] = [];
  const installed = unitText !== undefined;
  const properties: Record<string, string> = {};
  try {
    const r = await host.systemctl(["show", UNIT_NAME, `--property=${SHOW_PROPS.join(",")}`]);
    if (r.code === 0) {
      for (const line of r.stdout.split("\n")) {
        const i = line.indexOf("=");
        if (i > 0) properties[line.slice(0, i)] = line.slice(i + 1);
      }
    } else problems.push(`systemctl show failed: ${r.stderr.trim() || `exit ${r.code}`}`);
  } catch (err) {
    problems.push(`systemctl is not available: ${errorMessage(err)}`);
  }
  let envFileMode: string | undefined;
  try {
    const st = await Deno.stat(hostPath(host, envFile));
    if (st.mode !== null) {
      envFileMode = (st.mode & 0o777).toString(8).padStart(4, "0");
      if (st.mode & 0o077) {
        problems.push(`${envFile} is readable by others (mode ${envFileMode}): chmod 600 ${envFile}`);
      }
    }
  } catch {
    if (installed) problems.push(`${envFile} is missing: run plumise service install again`);
  }
  if (!installed) problems.push(`${unitPath} is not installed`);
  const active = properties.ActiveState === "active";
  if (installed && properties.ActiveState && !active) {
    problems.push(
      `the node is ${properties.ActiveState} (${properties.SubState}): journalctl -u ${UNIT_NAME}`,
    );
  }
  return { installed, unitPath, properties, active, envFile, envFileMode, problems };
}
