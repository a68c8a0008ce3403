/**
 * The error model of plumise: every failure that crosses a module boundary is a
 * `PlumiseError` with a stable machine-readable `code`, a human `hint` that says what
 * to do, the offending value in its message, and secrets redacted.
 * @module
 */

const registered = new Set<string>();

/** Registers a secret string so that it is replaced by `[redacted]` in every error message and log line. */
export function registerSecret(secret: string | undefined): void {
  if (!secret || secret.length < 6) return;
  registered.add(secret);
  if (secret.startsWith("0x")) registered.add(secret.slice(2));
  else registered.add(`0x${secret}`);
}

/** Replaces every registered secret in `text` by `[redacted]`. */
export function redact(text: string): string {
  let out = text;
  for (const s of registered) {
    if (out.includes(s)) out = out.split(s).join("[redacted]");
  }
  return out;
}

export interface PlumiseErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Extra structured details (already safe to print). */
  details?: Record<string, unknown>;
}

/** Base class of every error plumise raises on purpose. */
export class PlumiseError extends Error {
  /** Stable code, e.g. `CONFIG_INVALID`. Never changes once released. */
  readonly code: string;
  /** What the user should do about it. */
  readonly hint: string;
  readonly details: Record<string, unknown>;
  /** Exit code the CLI maps this error to (2 usage/config, 1 runtime). */
  readonly exitCode: number = 1;

  constructor(code: string, message: string, options: PlumiseErrorOptions = {}) {
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
  constructor(code: string, message: string, options: PlumiseErrorOptions & { problems?: string[] } = {}) {
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
/** Model hub / download failures. */
export class HubError extends PlumiseError {}
/** Malformed or oversized data from the wire. */
export class WireError extends PlumiseError {}
/** Swarm failures (peers, routing, sessions). */
export class SwarmError extends PlumiseError {}
/** HTTP API request errors; `status` is the HTTP status to answer with. */
export class ApiError extends PlumiseError {
  readonly status: number;
  constructor(status: number, code: string, message: string, options: PlumiseErrorOptions = {}) {
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
