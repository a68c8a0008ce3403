/**
 * The plumise command line: builds the commander program from the command list, runs it,
 * and maps every failure to one clear message and an exit code (0 ok, 1 runtime, 2 usage/config).
 * Only this folder prints or exits.
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { parse as parseDotenv } from "dotenv";
import { resolveConfig } from "../config/resolve_config.ts";
import type { Config, ResolvedConfig } from "../config/types.ts";
import { causeChain, ConfigError, errorMessage, PlumiseError, redact } from "../errors.ts";
import { Logger } from "../util/logger.ts";
import { VERSION } from "../util/version.ts";
import { availableMemoryBytes } from "../util/available_memory.ts";
import type { CommandContext } from "./command_context.ts";
import { flagsFromOptions } from "./config_options.ts";
import { COMMANDS } from "./commands/mod.ts";

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
/** A second signal this soon after the first is the same one delivered twice, not an operator's second. */
export const SAME_SIGNAL_MS = 1000;

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string>;
  cwd: string;
  isTerminal: boolean;
  stderrIsTerminal: boolean;
  /** Free memory for tier auto. */
  availableMemoryBytes(): number | undefined;
}

const enc = new TextEncoder();
function writeAll(file: typeof Deno.stdout, text: string): void {
  const bytes = enc.encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

export function denoIo(): CliIo {
  return {
    stdout: (t) => writeAll(Deno.stdout, t),
    stderr: (t) => writeAll(Deno.stderr, t),
    env: Deno.env.toObject(),
    cwd: Deno.cwd(),
    isTerminal: Deno.stdout.isTerminal(),
    stderrIsTerminal: Deno.stderr.isTerminal(),
    availableMemoryBytes,
  };
}

/** Commands that never resolve the settings: a named pipe at ./.env (or --env-file) is not theirs to read. */
const WITHOUT_SETTINGS = new Set(["version", "service"]);

/** Most bytes an env file may hold. */
const ENV_FILE_MAX = 1 << 20;

function envFileError(file: string, what: string): ConfigError {
  return new ConfigError("ENV_FILE_UNREADABLE", `--env-file ${file}: ${what}, not an env file`, {
    hint: "point --env-file at a KEY=VALUE text file",
  });
}

function readFailure(err: unknown, file: string, explicit: boolean): Record<string, string> {
  if (err instanceof PlumiseError) throw err;
  if (err instanceof Deno.errors.NotFound) {
    if (!explicit) return {};
    throw new ConfigError("ENV_FILE_MISSING", `--env-file ${file}: no such file`, {
      hint: "check the path, or leave out --env-file to read ./.env when it exists",
    });
  }
  throw new ConfigError("ENV_FILE_UNREADABLE", `--env-file ${file}: ${errorMessage(err)}`, {
    hint: "make the file readable by this user",
    cause: err,
  });
}

/** The settings in `got` bytes of `buf` (which holds one byte more than allowed, to see a file too big). */
function parseEnvBytes(file: string, buf: Uint8Array, got: number): Record<string, string> {
  if (got > ENV_FILE_MAX) throw envFileError(file, "more than 1 MiB");
  return parseDotenv(new TextDecoder().decode(buf.subarray(0, got)));
}

/** Reads the .env file: a missing default file is fine, a missing explicit one is an error. */
export function readDotenv(path: string | undefined, cwd: string): Record<string, string> {
  const file = path ?? `${cwd}/.env`;
  try {
    // a file, or a pipe (`--env-file <(sops -d …)`), read up to 1 MiB; not a device (/dev/zero)
    const info = Deno.statSync(file);
    if (!info.isFile && !info.isFifo) throw envFileError(file, "not a regular file or a pipe");
    if (info.isFile && info.size > ENV_FILE_MAX) throw envFileError(file, `${info.size} bytes`);
    using f = Deno.openSync(file, { read: true });
    const buf = new Uint8Array(ENV_FILE_MAX + 1);
    let got = 0;
    for (let n; got < buf.length && (n = f.readSync(buf.subarray(got))) !== null;) got += n;
    return parseEnvBytes(file, buf, got);
  } catch (err) {
    return readFailure(err, file, path !== undefined);
  }
}

/**
 * Reads the env file when it is a pipe, without blocking the thread: opening a named pipe waits
 * for a writer, and a thread blocked in it never runs the signal listeners, so SIGTERM could not
 * end the process. `signal` ends the wait; `onWait` is told once when nothing came within
 * `noticeMs`. Resolves undefined for anything but a pipe (`readDotenv` reads those).
 */
export async function readDotenvPipe(
  path: string | undefined,
  cwd: string,
  options: { signal: AbortSignal; onWait?: (file: string) => void; noticeMs?: number },
): Promise<Record<string, string> | undefined> {
  const file = path ?? `${cwd}/.env`;
  const info = await Deno.stat(file).catch(() => undefined);
  if (!info?.isFifo) return undefined;
  const { signal, onWait, noticeMs = 3_000 } = options;
  let abort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
  });
  const notice = setTimeout(() => onWait?.(file), noticeMs);
  let f: Deno.FsFile | undefined;
  try {
    const opening = Deno.open(file, { read: true });
    // an open that completes after the abort is closed, not leaked
    opening.then((late) => signal.aborted && late.close(), () => {});
    f = await Promise.race([opening, aborted]);
    const buf = new Uint8Array(ENV_FILE_MAX + 1);
    let got = 0;
    for (
      let n;
      got < buf.length && (n = await Promise.race([f.read(buf.subarray(got)), aborted])) !== null;
    ) {
      got += n;
    }
    return parseEnvBytes(file, buf, got);
  } catch (err) {
    return readFailure(err, file, path !== undefined);
  } finally {
    clearTimeout(notice);
    if (abort) signal.removeEventListener("abort", abort);
    aborted.catch(() => {});
    try {
      f?.close();
    } catch {
      // closed already
    }
  }
}

/**
 * The keystore `plumise wallet new` writes by default (`<data dir>/keystore.json`), where no key
 * and no keystore is configured and that file exists: the wallet a user just made is the one
 * `serve`, `doctor` and the rest use.
 */
function dataDirKeystore(resolved: ResolvedConfig): string | undefined {
  const c = resolved.config;
  if (c.privateKey || c.keystore) return undefined;
  const path = `${c.dataDir}/keystore.json`;
  try {
    return Deno.statSync(path).isFile ? path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What a SIGINT/SIGTERM at `now` (ms) means, the first having come at `firstAt`: the first stops
 * gracefully; a second within `SAME_SIGNAL_MS` is the first delivered twice (`deno task` or a
 * shell passes on the signal its process group already delivered to the node) and changes
 * nothing; a later one is an operator's second and exits at once.
 */
export function signalMeaning(firstAt: number | undefined, now: number): "stop" | "same" | "exit" {
  if (firstAt === undefined) return "stop";
  return now - firstAt < SAME_SIGNAL_MS ? "same" : "exit";
}

/** Runs the CLI with `args` (without the program name) and returns the exit code. */
export async function runCli(args: string[], io: CliIo = denoIo()): Promise<number> {
  const controller = new AbortController();
  let verbose = args.includes("-v") || args.includes("--verbose");
  const signals: Array<[Deno.Signal, () => void]> = [];
  let firstSignalAt: number | undefined;
  const onSignal = () => {
    const now = performance.now();
    const meaning = signalMeaning(firstSignalAt, now);
    if (meaning === "stop") {
      firstSignalAt = now;
      controller.abort(new PlumiseError("INTERRUPTED", "interrupted by a signal"));
    } else if (meaning === "exit") {
      io.stderr("second signal: exiting now\n");
      Deno.exit(130);
    }
  };
  for (const sig of (Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"]) as Deno.Signal[]) {
    try {
      Deno.addSignalListener(sig, onSignal);
      signals.push([sig, onSignal]);
    } catch {
      // signals unavailable (e.g. tests without permission): nothing to listen to
    }
  }

  let exitCode = EXIT_OK;
  let dotenvCache: Record<string, string> | undefined;
  let lastConfig: Config | undefined;
  let lastSources: ResolvedConfig["sources"] | undefined;
  const warned = new Set<string>();
  const ctx: CommandContext = {
    resolve(opts: Record<string, unknown>): ResolvedConfig {
      const envFile = (opts.envFile ?? program.opts().envFile) as string | undefined;
      dotenvCache ??= readDotenv(envFile, io.cwd);
      let resolved = resolveConfig({
        flags: flagsFromOptions({ ...program.opts(), ...opts }),
        env: io.env,
        dotenv: dotenvCache,
        system: { availableMemoryBytes: io.availableMemoryBytes() ?? NaN },
      });
      const keystore = dataDirKeystore(resolved);
      if (keystore) {
        resolved = {
          ...resolved,
          config: { ...resolved.config, keystore },
          sources: { ...resolved.sources, keystore: "auto" },
        };
      }
      lastConfig = resolved.config;
      lastSources = resolved.sources;
      for (const w of resolved.warnings) {
        if (warned.has(w)) continue;
        warned.add(w);
        io.stderr(`warning: ${redact(w)}\n`);
      }
      return resolved;
    },
    logger(config?: Config, { quiet = false } = {}): Logger {
      const c = config ?? lastConfig;
      const chosen = lastSources !== undefined && lastSources.logLevel !== "default";
      return new Logger({
        level: verbose ? "debug" : quiet && !chosen ? "warn" : c?.logLevel ?? "info",
        json: c?.logJson ? true : !io.stderrIsTerminal,
        sink: (_r, line) => io.stderr(line + "\n"),
      });
    },
    stdout: (t) => io.stdout(t + "\n"),
    stderr: (t) => io.stderr(t + "\n"),
    write: (t) => io.stdout(t),
    signal: controller.signal,
    isTerminal: io.isTerminal,
    get verbose() {
      return verbose;
    },
    setExitCode(code: number) {
      exitCode = code;
    },
    env: io.env,
  };

  const program = new Command()
    .name("plumise")
    .description("Plumise network inference node: serve transformer blocks to the swarm, earn PLM")
    .version(VERSION, "-V, --version", "print the version")
    .option("-v, --verbose", "debug logs; errors show their cause chain")
    .option("--env-file <path>", "read settings from this .env file (default ./.env when present)")
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      // a private key typed where an argument was not expected is echoed by commander, before any
      // secret is known to redact: anything shaped like one goes
      outputError: (s, write) => write(redact(s).replace(/\b(0x)?[0-9a-fA-F]{64}\b/g, "[redacted]")),
    });
  // a pipe as the env file is read before a command that reads settings, so a signal can end the
  // wait for its writer; `version` and `service` (whose --env-file is the unit's) leave it unread
  program.hook("preAction", async (_top, action) => {
    let top = action;
    while (top.parent && top.parent !== program) top = top.parent;
    if (WITHOUT_SETTINGS.has(top.name())) return;
    const envFile = (action.opts().envFile ?? program.opts().envFile) as string | undefined;
    dotenvCache ??= await readDotenvPipe(envFile, io.cwd, {
      signal: controller.signal,
      onWait: (file) => io.stderr(`waiting for a writer on the pipe ${file} (Ctrl-C to stop)\n`),
    });
  });
  for (const register of COMMANDS) register(program, ctx);
  for (const sub of program.commands) {
    sub.exitOverride();
    sub.showHelpAfterError("(run with --help for usage)");
  }

  try {
    await program.parseAsync(args, { from: "user" });
    verbose ||= Boolean(program.opts().verbose);
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (
        err.code === "commander.helpDisplayed" || err.code === "commander.version" ||
        err.code === "commander.help"
      ) {
        return EXIT_OK;
      }
      if (err.code === "commander.executeSubCommandAsync") return EXIT_RUNTIME;
      return EXIT_USAGE; // commander already printed the message
    }
    return reportError(err, io, verbose);
  } finally {
    for (const [sig, fn] of signals) {
      try {
        Deno.removeSignalListener(sig, fn);
      } catch {
        // already gone
      }
    }
  }
}

/** Prints one clear message (+ hint, + cause chain with -v) and returns the exit code. */
export function reportError(err: unknown, io: Pick<CliIo, "stderr">, verbose: boolean): number {
  if (err instanceof PlumiseError) {
    io.stderr(`error [${err.code}]: ${err.message}\n`);
    if (err.hint) io.stderr(`hint: ${err.hint}\n`);
    if (verbose) {
      const chain = causeChain(err).slice(1);
      for (const line of chain) io.stderr(`  caused by: ${line}\n`);
      if (!chain.length) io.stderr("  (no underlying cause)\n");
    }
    return err.exitCode;
  }
  io.stderr(`error: ${errorMessage(err)}\n`);
  io.stderr("hint: this is unexpected; run again with -v and report the output\n");
  if (verbose) { for (const line of causeChain(err)) io.stderr(`  ${line}\n`); }
  return EXIT_RUNTIME;
}
