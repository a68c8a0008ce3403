/**
 * A small structured logger: levels, pretty lines on a terminal, JSON lines otherwise,
 * always to stderr, child loggers that carry context. Secrets are redacted.
 * @module
 */
import { isShortSecret, redact, redactLong } from "../errors.ts";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LogRecord {
  time: string;
  level: Exclude<LogLevel, "silent">;
  msg: string;
  [key: string]: unknown;
}

/** Where log lines go; tests pass a function that collects records. */
export type LogSink = (record: LogRecord, line: string) => void;

export interface LoggerOptions {
  level?: LogLevel;
  /** JSON lines (default: when stderr is not a terminal). */
  json?: boolean;
  sink?: LogSink;
  context?: Record<string, unknown>;
}

const encoder = new TextEncoder();
function stderrSink(_r: LogRecord, line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr closed: nothing sensible left to do
  }
}

function isTerminal(): boolean {
  try {
    return Deno.stderr.isTerminal();
  } catch {
    return false;
  }
}

function fmtValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /\s|"/.test(v) ? JSON.stringify(v) : v;
  if (typeof v === "bigint") return v.toString();
  try {
    return JSON.stringify(v, (_k, x) => typeof x === "bigint" ? x.toString() : x);
  } catch {
    return String(v);
  }
}

export class Logger {
  readonly level: LogLevel;
  readonly json: boolean;
  readonly #sink: LogSink;
  readonly #context: Record<string, unknown>;

  constructor(options: LoggerOptions = {}) {
    this.level = options.level ?? "info";
    this.json = options.json ?? !isTerminal();
    this.#sink = options.sink ?? stderrSink;
    this.#context = options.context ?? {};
  }

  /** A logger that adds `context` to every record. */
  child(context: Record<string, unknown>): Logger {
    return new Logger({
      level: this.level,
      json: this.json,
      sink: this.#sink,
      context: { ...this.#context, ...context },
    });
  }

  enabled(level: Exclude<LogLevel, "silent">): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.#log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.#log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.#log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#log("error", msg, fields);
  }

  #log(level: Exclude<LogLevel, "silent">, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const record: LogRecord = { time: new Date().toISOString(), level, msg: redact(msg) };
    for (const [k, v] of Object.entries({ ...this.#context, ...fields })) {
      if (v === undefined) continue;
      record[k] = safeValue(v, 0);
    }
    let line: string;
    if (this.json) {
      // Values are redacted above; only long secrets are replaced on the line itself (a short one
      // could match JSON syntax, e.g. a number, and break the line).
      line = redactLong(JSON.stringify(record));
    } else {
      const extras = Object.entries(record)
        .filter(([k]) => k !== "time" && k !== "level" && k !== "msg")
        .map(([k, v]) => `${k}=${fmtValue(v)}`)
        .join(" ");
      line = redact(
        `${record.time.slice(11, 19)} ${level.toUpperCase().padEnd(5)} ${record.msg}${
          extras ? " " + extras : ""
        }`,
      );
    }
    this.#sink(record, line);
  }
}

/**
 * A copy of a field value that is safe to log and to serialise: strings redacted (nested ones too),
 * bigints as decimal strings, errors as their redacted message, numbers and booleans that are a
 * short secret as `[redacted]`; nesting deeper than 8 levels is cut.
 */
function safeValue(v: unknown, depth: number): unknown {
  if (typeof v === "string") return redact(v);
  if (typeof v === "bigint") return safeValue(v.toString(), depth);
  if (typeof v === "number" || typeof v === "boolean") return isShortSecret(String(v)) ? "[redacted]" : v;
  if (v instanceof Error) return redact(v.message);
  if (v === null || typeof v !== "object") return v;
  if (depth >= 8) return "[nested too deep]";
  if (Array.isArray(v)) return v.map((x) => safeValue(x, depth + 1));
  if (v instanceof Date) return v.toISOString();
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[redact(k)] = safeValue(x, depth + 1);
  return out;
}

/** A logger that drops everything (default for library parts that were given none). */
export const silentLogger: Logger = new Logger({ level: "silent", json: true, sink: () => {} });

/** Collects records in memory; for tests. */
export function memoryLogger(level: LogLevel = "debug"): { logger: Logger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  return { logger: new Logger({ level, json: true, sink: (r) => records.push(r) }), records };
}
