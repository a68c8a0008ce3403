/**
 * Small validators for headers that came off the wire: every failure is a `WireError`
 * with code `BAD_FRAME`, the field path and the offending value.
 * @module
 */
import { WireError } from "../errors.ts";

/** A JSON object as parsed from a header. */
export type Obj = Record<string, unknown>;

function show(v: unknown): string {
  let s: string;
  try {
    s = typeof v === "string"
      ? JSON.stringify(v)
      : typeof v === "bigint"
      ? `${v}n`
      : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}

/** Throws `BAD_FRAME` for `field` with the offending value. */
export function bad(field: string, expected: string, value: unknown): never {
  throw new WireError("BAD_FRAME", `${field} must be ${expected}, got ${show(value)}`, {
    hint: "the peer sent a malformed message; check that both sides speak the same protocol version",
    details: { field },
  });
}

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function obj(v: unknown, field: string): Obj {
  if (!isObj(v)) bad(field, "an object", v);
  return v;
}

export function str(
  o: Obj,
  key: string,
  opts: { min?: number; max: number; pattern?: RegExp },
  path = "",
): string {
  const v = o[key];
  const min = opts.min ?? 1;
  if (typeof v !== "string" || v.length < min || v.length > opts.max) {
    bad(path + key, `a string of ${min}..${opts.max} characters`, v);
  }
  if (opts.pattern && !opts.pattern.test(v)) bad(path + key, `a string matching ${opts.pattern}`, v);
  return v;
}

export function optStr(
  o: Obj,
  key: string,
  opts: { min?: number; max: number; pattern?: RegExp },
  path = "",
): string | undefined {
  return o[key] === undefined || o[key] === null ? undefined : str(o, key, opts, path);
}

export function int(o: Obj, key: string, min: number, max: number, path = ""): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    bad(path + key, `an integer in [${min}, ${max}]`, v);
  }
  return v;
}

export function optInt(o: Obj, key: string, min: number, max: number, path = ""): number | undefined {
  return o[key] === undefined || o[key] === null ? undefined : int(o, key, min, max, path);
}

export function num(o: Obj, key: string, min: number, max = Number.MAX_VALUE, path = ""): number {
  const v = o[key];
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max) {
    bad(path + key, `a finite number in [${min}, ${max}]`, v);
  }
  return v;
}

export function bool(o: Obj, key: string, path = ""): boolean {
  const v = o[key];
  if (typeof v !== "boolean") bad(path + key, "a boolean", v);
  return v;
}

export function oneOf<T extends string>(o: Obj, key: string, values: readonly T[], path = ""): T {
  const v = o[key];
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
    bad(path + key, `one of ${values.join("|")}`, v);
  }
  return v as T;
}

export function arr(o: Obj, key: string, maxLen: number, path = ""): unknown[] {
  const v = o[key];
  if (!Array.isArray(v) || v.length > maxLen) bad(path + key, `an array of at most ${maxLen} items`, v);
  return v;
}
