/**
 * The error model of plumise: every failure that crosses a module boundary is a
 * `PlumiseError` with a stable machine-readable `code`, a human `hint` that says what
 * to do, the offending value in its message, and secrets redacted. The codes and their meanings are
 * one registry, `ERROR_CODES` (lib/error_codes.ts).
 * @module
 */
import type { ErrorCode } from "./error_codes.ts";

export { ERROR_CODES, type ErrorCode, isErrorCode } from "./error_codes.ts";

/** Secrets this long or longer are replaced wherever they occur, even inside longer words. */
const SUBSTRING_MIN = 6;
/** Long secrets and what they are replaced by, longest first (a URL before its parts). */
let long: Array<[string, string]> = [];
/** Short secrets: replaced only where they stand as a word (not inside a longer word). */
let short: RegExp | undefined;
const shortSecrets = new Set<string>();

export interface RegisterSecretOptions {
  /** What the secret is replaced by (default `[redacted]`), e.g. a URL without its credentials. */
  replacement?: string;
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Registers a secret string so that it is replaced by `[redacted]` in every error message and log
 * line. A secret of 6 characters or more is replaced wherever it occurs; a shorter one only where it
 * stands as a word (not preceded or followed by a letter or digit), so that a 3-character password
 * is hidden without turning every such syllable in the logs into `[redacted]`.
 */
export function registerSecret(secret: string | undefined, options: RegisterSecretOptions = {}): void {
  if (!secret) return;
  const replacement = options.replacement ?? "[redacted]";
  if (secret.length < SUBSTRING_MIN) {
    if (shortSecrets.has(secret)) return;
    shortSecrets.add(secret);
    const words = [...shortSecrets].sort((a, b) => b.length - a.length).map(escapeRegExp);
    short = new RegExp(`(?<![\\p{L}\\p{N}])(?:${words.join("|")})(?![\\p{L}\\p{N}])`, "gu");
    return;
  }
  const add = (s: string) => {
    if (s.length >= SUBSTRING_MIN && !long.some(([k]) => k === s)) long.push([s, replacement]);
  };
  add(secret);
  if (options.replacement === undefined) {
    if (secret.startsWith("0x")) add(secret.slice(2));
    else add(`0x${secret}`);
  }
  long = long.sort((a, b) => b[0].length - a[0].length);
}

/** Replaces every registered secret in `text` (long ones everywhere, short ones as words). */
export function redact(text: string): string {
  let out = redactLong(text);
  if (short) out = out.replace(short, "[redacted]");
  return out;
}

/**
 * Replaces only the secrets of 6 characters or more. Safe on a serialised JSON line: it never
 * touches JSON syntax (numbers, `true`), which a short secret could match as a word.
 */
export function redactLong(text: string): string {
  let out = text;
  for (const [s, replacement] of long) {
    if (out.includes(s)) out = out.split(s).join(replacement);
  }
  return out;
}

/** Whether `text`, as a whole, is a registered short secret (for values that are not strings, e.g. numbers). */
export function isShortSecret(text: string): boolean {
  return shortSecrets.has(text);
}

export interface PlumiseErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Extra structured details (already safe to print). */
  details?: Record<string, unknown>;
}

/** Base class of every error plumise raises on purpose. */
export class PlumiseError extends Error {
  /** Stable code, e.g. `CONFIG_INVALID` (see `ERROR_CODES`). Never changes once released. */
  readonly code: ErrorCode;
  /** What the user should do about it. */
  readonly hint: string;
  readonly details: Record<string, unknown>;
  /** Exit code the CLI maps this error to (2 usage/config, 1 runtime). */
  readonly exitCode: number = 1;

  constructor(code: ErrorCode, message: string, options: PlumiseErrorOptions = {}) {
    super(redact(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = redact(options.hint ?? "");
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, hint: this.hint, ...this.details };
  }
}

/** Bad configuration, bad flags, bad user input: exit code 2. */
export class ConfigError extends PlumiseError {
  override readonly exitCode = 2;
  /** Every individual problem, when several were found at once. */
  readonly problems: readonly string[];
  constructor(code: ErrorCode, message: string, options: PlumiseErrorOptions & { problems?: string[] } = {}) {
    super(code, message, options);
    this.problems = (options.problems ?? [message]).map(redact);
  }
}

/** Something is not built or not available in this build/mode. */
export class UnavailableError extends PlumiseError {}
/** Chain / RPC failures. */
export class ChainError extends PlumiseError {}
/** Oracle reporting failures. */
export class ReporterError extends PlumiseError {}
/** Block runtime failures (checkpoints, graphs, sessions). */
export class RuntimeError extends PlumiseError {}
/** Hub errors that no retry or restart mends: the model named is not there, or not for us. */
const HUB_CONFIG_CODES: ReadonlySet<string> = new Set([
  "HUB_NOT_FOUND",
  "HUB_UNAUTHORIZED",
  "HUB_BAD_PATH",
  "HUB_CACHE_UNWRITABLE",
]);

/**
 * Model hub / download failures. A model that does not exist, is refused, names files outside
 * its repo or cannot be cached here is the configuration's to fix: exit 2, which the service unit
 * does not restart (`RestartPreventExitStatus=2`) rather than looping on it.
 */
export class HubError extends PlumiseError {
  override readonly exitCode: number = HUB_CONFIG_CODES.has(this.code) ? 2 : 1;
}
/** Malformed or oversized data from the wire. */
export class WireError extends PlumiseError {}
/** Swarm failures (peers, routing, sessions). */
export class SwarmError extends PlumiseError {}
/** HTTP API request errors; `status` is the HTTP status to answer with. */
export class ApiError extends PlumiseError {
  readonly status: number;
  constructor(status: number, code: ErrorCode, message: string, options: PlumiseErrorOptions = {}) {
    super(code, message, options);
    this.status = status;
  }
}
/** An operation was aborted or timed out. */
export class TimeoutError extends PlumiseError {
  constructor(message: string, options: PlumiseErrorOptions = {}) {
    super("TIMEOUT", message, {
      hint: "the other side did not answer in time; it is retried where safe",
      ...options,
    });
  }
}

/** Turns any thrown value into a message chain, innermost last (used by `-v`). */
export function causeChain(err: unknown): string[] {
  const out: string[] = [];
  let cur: unknown = err;
  const seen = new Set<unknown>();
  while (cur !== undefined && cur !== null && !seen.has(cur) && out.length < 10) {
    seen.add(cur);
    if (cur instanceof Error) {
      const code = cur instanceof PlumiseError ? ` [${cur.code}]` : "";
      out.push(redact(`${cur.name}${code}: ${cur.message}`));
      cur = (cur as { cause?: unknown }).cause;
    } else {
      out.push(redact(String(cur)));
      break;
    }
  }
  return out;
}

/** The message of any thrown value, redacted. */
export function errorMessage(err: unknown): string {
  return redact(err instanceof Error ? err.message : String(err));
}
