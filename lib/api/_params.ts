/**
 * Validation helpers shared by the request parsers: every failure is an `ApiError` 400 that names the
 * field, the allowed range and the value received.
 * @module
 */
import { ApiError } from "../errors.ts";

/**
 * Shows a received value in an error message, shortened. Arrays and objects are described, not
 * written out: turning a large or deep one into text costs more than the request is worth.
 */
export function show(v: unknown): string {
  if (Array.isArray(v)) return `an array of ${v.length} item${v.length === 1 ? "" : "s"}`;
  if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    const names = keys.slice(0, 3).map((k) => JSON.stringify(k.length > 20 ? `${k.slice(0, 17)}...` : k));
    return keys.length === 0
      ? "an empty object"
      : `an object with ${names.join(", ")}${keys.length > 3 ? ", ..." : ""}`;
  }
  const s = typeof v === "string" ? JSON.stringify(v.length > 200 ? v.slice(0, 200) : v) : String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function invalid(field: string, expected: string, value: unknown, hint?: string): ApiError {
  return new ApiError(400, "INVALID_PARAMETER", `${field} must be ${expected}, got ${show(value)}`, {
    hint: hint ?? `set ${field} to ${expected}, or leave it out for the default`,
    details: { param: field },
  });
}

/** A number in [min, max] (or the default when absent/null). */
export function numberIn(field: string, value: unknown, min: number, max: number, dflt: number): number {
  if (value === undefined || value === null) return dflt;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw invalid(field, `a number in ${min}..${max}`, value);
  }
  return value;
}

/** An integer in [min, max] (or the default when absent/null). */
export function integerIn(field: string, value: unknown, min: number, max: number, dflt: number): number {
  if (value === undefined || value === null) return dflt;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `an integer in ${min}..${max}`, value);
  }
  return value;
}

export function booleanOr(field: string, value: unknown, dflt: boolean): boolean {
  if (value === undefined || value === null) return dflt;
  if (typeof value !== "boolean") throw invalid(field, "true or false", value);
  return value;
}

/** `stop`: a string or an array of at most 4 non-empty strings (OpenAI's rule). */
export function stopList(field: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === "string" ? [value] : value;
  if (
    !Array.isArray(list) || list.length > 4 ||
    list.some((s) => typeof s !== "string" || s.length === 0 || s.length > 256)
  ) {
    throw invalid(field, "a non-empty string or an array of at most 4 non-empty strings", value);
  }
  return list as string[];
}

/** The largest `max_new_tokens` / `max_tokens` accepted (docs/protocol.md, "Gateway HTTP API"). */
export const MAX_NEW_TOKENS_LIMIT = 4096;
