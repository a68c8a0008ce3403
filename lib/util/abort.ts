/**
 * Abort and timeout helpers. The convention: every call that can be cancelled takes its signal as
 * `options.signal`, in an options object that is its last parameter (`AbortOptions`), never as a
 * positional parameter; network calls also have a default timeout.
 * @module
 */
import { TimeoutError } from "../errors.ts";

/** The options of a call that can be cancelled (or that part of a larger options object). */
export interface AbortOptions {
  /** Aborts the call; it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** A signal that aborts when `parent` aborts or after `ms`, plus a `clear()` that releases the timer. */
export function timeoutSignal(ms: number, parent?: AbortSignal): { signal: AbortSignal; clear: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new TimeoutError(`timed out after ${ms} ms`, { details: { timeoutMs: ms } })),
    ms,
  );
  const onAbort = () => controller.abort(parent?.reason);
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener("abort", onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onAbort);
    },
  };
}

/**
 * Runs `fn` with a signal that aborts after `ms` or when `options.signal` does; the timer never
 * outlives the call.
 */
export async function withTimeout<T>(
  ms: number,
  fn: (signal: AbortSignal) => Promise<T>,
  options: AbortOptions = {},
): Promise<T> {
  const { signal, clear } = timeoutSignal(ms, options.signal);
  try {
    return await Promise.race([
      fn(signal),
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      }),
    ]);
  } finally {
    clear();
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. No timer leaks. */
export function sleep(ms: number, options: AbortOptions = {}): Promise<void> {
  const signal = options.signal;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * `work`'s outcome, or the abort reason of `signal` when that comes first (at once when it already
 * has). `work` itself goes on: whoever else waits for it still gets it.
 */
export function raceAbort<T>(work: Promise<T>, { signal }: { signal: AbortSignal }): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Resolves once `signal` aborts (at once when it already has); never rejects. */
export function untilAborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
}

/** True when `err` is an abort/timeout rather than a real failure. */
export function isAbort(err: unknown): boolean {
  return err instanceof TimeoutError ||
    (err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError"));
}
