/**
 * Small validators for headers that came off the wire: every failure is a `WireError`
 * with code `BAD_FRAME`, the field path and the offending value.
 * @module
 */
import { WireError } from "../errors.ts";

/** A JSON object as parsed from a header. */
export type Obj = Record<string, unknown>;

/** Longest preview of a bad value in an error message. */
const PREVIEW_CHARS = 80;

/**
 * A short JSON-like preview of `v` (at most PREVIEW_CHARS characters): built piece by piece and
 * stopped as soon as it is long enough, so a huge or deeply nested bad value costs no more than
 * a small one (never `JSON.stringify` of the whole value).
 */
export function preview(v: unknown, max = PREVIEW_CHARS): string {
  let out = "";
  const put = (s: string): boolean => (out += s).length <= max;
  const walk = (x: unknown, depth: number): boolean => {
    if (typeof x === "string") return put(JSON.stringify(x.length > max ? x.slice(0, max) : x));
    if (typeof x === "bigint") return put(`${x}n`);
    if (x === null || typeof x !== "object") return put(String(x));
    if (depth >= 3) return put(Array.isArray(x) ? "[…]" : "{…}");
    if (Array.isArray(x)) {
      if (!put("[")) return false;
      for (let i = 0; i < x.length; i++) {
        if ((i > 0 && !put(",")) || !walk(x[i], depth + 1)) return false;
      }
      return put("]");
    }
    if (!put("{")) return false;
    let first = true;
    for (const k in x) {
      if (!Object.hasOwn(x, k)) continue;
      if ((!first && !put(",")) || !put(JSON.stringify(k.slice(0, max)) + ":")) return false;
      if (!walk((x as Record<string, unknown>)[k], depth + 1)) return false;
      first = false;
    }
    return put("}");
  };
  walk(v, 0);
  return out.length > max ? out.slice(0, max - 3) + "..." : out;
}

/** Throws `BAD_FRAME` for `field` with the offending value. */
export function bad(field: string, expected: string, value: unknown): never {
  throw new WireError("BAD_FRAME", `${field} must be ${expected}, got ${preview(value)}`, {
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
