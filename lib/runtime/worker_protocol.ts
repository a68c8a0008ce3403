/**
 * Messages between `WorkerClient` (main thread) and ort_worker.ts, and error (de)serialization
 * so typed RuntimeErrors survive the thread boundary.
 * @module
 */
import { type ErrorCode, PlumiseError, RuntimeError } from "../errors.ts";
import type { EngineLoadRequest, EngineTensor } from "./engine_types.ts";
import type { DirectEnd, DirectListenOptions } from "./types.ts";
import type { WireDType } from "../wire/mod.ts";

export type WorkerRequest =
  | { id: number; op: "load"; args: EngineLoadRequest }
  | {
    id: number;
    op: "open";
    args: { id: string; start: number; end: number; maxLength: number; batch: number };
  }
  | { id: number; op: "close"; args: { id: string } }
  | {
    id: number;
    op: "step";
    args: { id: string; hidden: EngineTensor; startFromPosition?: number; hypoIds?: number[] };
  }
  | { id: number; op: "forward"; args: { start: number; end: number; hidden: EngineTensor } }
  | { id: number; op: "embed"; args: { ids: Int32Array; batch: number; tokens: number } }
  | { id: number; op: "logits"; args: { hidden: Float32Array; batch: number } }
  | { id: number; op: "dispose"; args: Record<string, never> }
  /** Open sessions and unreleased native objects (after a garbage collection where `gc` is exposed). */
  | { id: number; op: "stats"; args: Record<string, never> }
  | { id: number; op: "direct_listen"; args: DirectListenOptions }
  /** The direct listener moves to `port` (back to DIRECT_PORT after a move); answers the port. */
  | { id: number; op: "direct_rebind"; args: { port: number } }
  | {
    id: number;
    op: "direct_offer";
    args: { id: string; dtype: WireDType; batch: number; hiddenSize: number };
  }
  | {
    id: number;
    op: "direct_cancel";
    args: { id: string; error?: { code: string; message: string; hint?: string } };
  };

/**
 * How often, at most, the Worker reports the steps it served over direct paths (a step after a
 * quiet spell at once, the following ones batched). Not per step: waking the main thread for
 * every decode step takes CPU from whichever server computes next on a small machine.
 */
export const DIRECT_REPORT_MS = 200;

/** Unsolicited news from the Worker about a session's direct path (`id` is the session id). */
export type DirectEvent =
  | { event: "direct"; id: string; kind: "attached" }
  | { event: "direct"; id: string; kind: "lapsed" }
  /** Steps served since the last report, as [tokens, computeMs] (reported at most every `DIRECT_REPORT_MS`). */
  | { event: "direct"; id: string; kind: "steps"; steps: [number, number][]; position: number }
  | { event: "direct"; id: string; kind: "ended"; end: DirectEnd };

/**
 * Batches of steps the Worker ran since its last report (at most every `DIRECT_REPORT_MS`):
 * sessions per batch, each step's wait in the queue in ms (batch_scheduler.ts), and its waits for
 * the sessions of its last batches (`waitForPeers`): how many were filled (every expected session
 * arrived) or in vain (the window ran out), and the ms they took together.
 */
export interface BatchEvent {
  event: "batch";
  sizes: number[];
  waitsMs: number[];
  windows?: BatchWindows;
}

/** The Worker's waits for its recent sessions since its last report. */
export interface BatchWindows {
  filled: number;
  inVain: number;
  ms: number;
}

export type WorkerOp = WorkerRequest["op"];

export interface SerializedError {
  name: string;
  code: ErrorCode;
  message: string;
  hint: string;
  details: Record<string, unknown>;
}

export type WorkerReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError };

/** Anything the Worker posts. */
export type WorkerMessage = WorkerReply | DirectEvent | BatchEvent;

/** 0 = interactive (served first), 1 = batch (forward requests). */
export function priorityOf(op: WorkerOp): 0 | 1 {
  return op === "forward" ? 1 : 0;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof PlumiseError) {
    return { name: err.name, code: err.code, message: err.message, hint: err.hint, details: err.details };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return {
    name: "RuntimeError",
    code: "ENGINE_FAILED",
    message: e.message,
    hint: "internal error in the runtime worker",
    details: {},
  };
}

export function deserializeError(e: SerializedError): RuntimeError {
  return new RuntimeError(e.code, e.message, { hint: e.hint, details: e.details });
}
