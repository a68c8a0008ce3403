/**
 * Validation helpers shared by the request parsers: every failure is an `ApiError` 400 that names the
 * field, the allowed range and the value received.
 * @module
 */
import { ApiError } from "../errors.ts";

/** Items or keys of an array or object that `show` writes out; a larger one is described. */
const SHOWN_ITEMS = 8;

/**
 * Shows a received value in an error message, shortened. A large array or object is described,
 * not written out: turning one into text costs more than the request is worth (the body's shape
 * is bounded before it is parsed, so a small one is cheap).
 */
export function show(v: unknown): string {
  if (Array.isArray(v) && v.length > SHOWN_ITEMS) return `an array of ${v.length} items`;
  if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length > SHOWN_ITEMS) {
    const keys = Object.keys(v);
    const names = keys.slice(0, 3).map((k) => JSON.stringify(k.length > 20 ? `${k.slice(0, 17)}...` : k));
    return `an object with ${keys.length} keys (${names.join(", ")}, ...)`;
  }
  if (v !== null && typeof v === "object") {
    let s: string;
    try {
      s = JSON.stringify(v);
    } catch {
      s = String(v);
    }
    return s.length > 60 ? `${s.slice(0, 57)}...` : s;
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

/** A sampling seed: absent, or an integer a double holds exactly (`{}` or `{seed}`, to spread). */
export function seedOf(field: string, value: unknown): { seed?: number } {
  if (value === undefined || value === null) return {};
  return { seed: integerIn(field, value, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0) };
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

/** OpenAI fields a node does not implement: when each asks for nothing, and what to do instead. */
export type UnsupportedFields = Readonly<Record<string, { idle: (v: unknown) => boolean; hint: string }>>;

/** The fields chat and text completions share. */
export const OPENAI_UNSUPPORTED: UnsupportedFields = {
  presence_penalty: { idle: (v) => v === 0, hint: "use repetition_penalty (1..2) instead" },
  frequency_penalty: { idle: (v) => v === 0, hint: "use repetition_penalty (1..2) instead" },
  logit_bias: {
    idle: (v) => typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 0,
    hint: "this node cannot bias tokens; leave logit_bias out",
  },
};

/**
 * Refuses (400 `UNSUPPORTED`, naming the field) any of `fields` that asks for something: the
 * answer would otherwise come back as if it had not been sent. Absent, null and idle values pass.
 */
export function refuseUnsupported(body: Record<string, unknown>, fields: UnsupportedFields): void {
  for (const [field, { idle, hint }] of Object.entries(fields)) {
    const v = body[field];
    if (v === undefined || v === null || idle(v)) continue;
    throw new ApiError(400, "UNSUPPORTED", `${field} is not supported by this node, got ${show(v)}`, {
      hint,
      details: { param: field },
    });
  }
}
