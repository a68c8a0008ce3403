/**
 * Validation at the runtime's boundary, shared by the real runtime and lib/testing's FakeBackend so both
 * refuse the same inputs with the same codes: hidden-state tensors (shape, hidden size, batch,
 * finiteness), spans, session openings (batch, maxLength, cache budget) and step options.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import { firstNonFinite } from "../wire/first_non_finite.ts";
import type { HiddenStates, StepOptions } from "./types.ts";

const bad = (message: string, hint: string, details?: Record<string, unknown>) =>
  new RuntimeError("BAD_INPUT", message, { hint, details });

/** Throws BAD_INPUT unless `hidden` is a well-formed finite `[B, T, H]` tensor. */
export function validateHidden(hidden: HiddenStates, hiddenSize: number, batch?: number): void {
  if (
    !hidden || !(hidden.data instanceof Float32Array) ||
    !Array.isArray(hidden.shape) && !ArrayBuffer.isView(hidden.shape)
  ) {
    throw bad(
      "hidden states must be {data: Float32Array, shape: [B, T, H]}",
      "pass a float32 tensor of shape [B, T, H]",
    );
  }
  const shape = Array.from(hidden.shape);
  if (shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw bad(
      `hidden states shape must be [B, T, H] with positive integers, got [${shape.join(", ")}]`,
      "send [batch, tokens, hidden]",
    );
  }
  const [b, t, h] = shape;
  if (h !== hiddenSize) {
    throw bad(
      `hidden size ${h} does not match the model's hidden size ${hiddenSize}`,
      "send hidden states of this model",
      {
        got: h,
        expected: hiddenSize,
      },
    );
  }
  if (batch !== undefined && b !== batch) {
    throw bad(
      `batch ${b} does not match the session's batch ${batch}`,
      "send the batch size the session was opened with",
      {
        got: b,
        expected: batch,
      },
    );
  }
  if (hidden.data.length !== b * t * h) {
    throw bad(
      `hidden data has ${hidden.data.length} values but shape [${b}, ${t}, ${h}] needs ${b * t * h}`,
      "make data match the shape",
    );
  }
  const k = firstNonFinite(hidden.data);
  if (k >= 0) {
    throw bad(
      `hidden states contain a non-finite value (${hidden.data[k]}) at flat index ${k}`,
      "check the previous span's output; NaN/Inf cannot be served",
      { index: k },
    );
  }
}

/**
 * Checks a session step's options against the session (holding `position` tokens, room for
 * `maxLength`) for a `[B, T, …]` input: `startFromPosition` inside the cache (BAD_INPUT), the step
 * fitting in `maxLength` (TOO_LONG), `hypoIds` a row index per batch row (BAD_INPUT). Returns
 * the position the step starts at and the row order.
 */
export function validateStep(
  shape: readonly number[],
  position: number,
  maxLength: number,
  options: Pick<StepOptions, "startFromPosition" | "hypoIds">,
): { position: number; hypoIds?: number[] } {
  const [b, t] = shape;
  const s = options.startFromPosition;
  if (s !== undefined) {
    if (!Number.isInteger(s) || s < 0 || s > position) {
      throw bad(
        `startFromPosition ${s} is outside [0, ${position}] (the session holds ${position} tokens)`,
        "roll back only to a position already in the cache",
        { startFromPosition: s, position },
      );
    }
    position = s;
  }
  if (position + t > maxLength) {
    throw new RuntimeError(
      "TOO_LONG",
      `step of ${t} tokens at position ${position} exceeds the session's maxLength ${maxLength}`,
      {
        hint: "open the session with a larger maxLength",
        details: { position, tokens: t, maxLength },
      },
    );
  }
  if (options.hypoIds === undefined) return { position };
  const hypoIds = Array.from(options.hypoIds);
  if (hypoIds.length !== b || !hypoIds.every((v) => Number.isInteger(v) && v >= 0 && v < b)) {
    throw bad(
      `hypoIds [${hypoIds.join(", ")}] must have ${b} integers in [0, ${b})`,
      "send one source row index per batch row",
      { hypoIds },
    );
  }
  return { position, hypoIds };
}

/** `UNKNOWN_SESSION` for a step on a session that was closed. */
export function closedSessionError(sessionId: string): RuntimeError {
  return new RuntimeError("UNKNOWN_SESSION", `session ${sessionId} is closed`, {
    hint: "open a new session (and replay the history)",
    details: { sessionId },
  });
}

/** Throws BAD_SPAN unless `[start, end)` is a non-empty integer range inside the served span. */
export function checkSpan(start: number, end: number, served: { start: number; end: number }): void {
  if (
    !Number.isInteger(start) || !Number.isInteger(end) || start < served.start || end > served.end ||
    start >= end
  ) {
    throw new RuntimeError(
      "BAD_SPAN",
      `span [${start}, ${end}) is not inside the served span [${served.start}, ${served.end})`,
      {
        hint: "route this range to a server that serves it",
        details: { start, end, served: [served.start, served.end] },
      },
    );
  }
}

/**
 * Checks a session opening against the server: span inside the served one (BAD_SPAN), batch and
 * maxLength positive integers (BAD_INPUT), maxLength within the server's limit (TOO_LONG), and
 * `batch × maxLength × blocks` cache tokens available (CACHE_FULL). Returns that cache need.
 */
export function validateOpen(
  o: { start: number; end: number; maxLength: number; batch: number },
  server: { served: { start: number; end: number }; maxLength: number; cacheLeft: number },
): number {
  const { start, end, maxLength, batch } = o;
  checkSpan(start, end, server.served);
  if (!Number.isInteger(batch) || batch < 1) {
    throw bad(`batch must be an integer ≥ 1, got ${batch}`, "open with batch ≥ 1");
  }
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw bad(`maxLength must be an integer ≥ 1, got ${maxLength}`, "open with maxLength ≥ 1");
  }
  if (maxLength > server.maxLength) {
    throw new RuntimeError(
      "TOO_LONG",
      `maxLength ${maxLength} exceeds this server's limit ${server.maxLength}`,
      {
        hint: `use maxLength ≤ ${server.maxLength}`,
        details: { maxLength, limit: server.maxLength },
      },
    );
  }
  const need = batch * maxLength * (end - start);
  const left = server.cacheLeft;
  if (need > left) {
    throw new RuntimeError(
      "CACHE_FULL",
      `session needs ${need} cache tokens (batch ${batch} × maxLength ${maxLength} × ${
        end - start
      } blocks) but only ${left} are left`,
      {
        hint: "use another server, a shorter maxLength, or retry later",
        details: { need, left },
      },
    );
  }
  return need;
}
