/**
 * `serveDirectSteps`: the server side of an inference session's direct path
 * (lib/wire/direct_channel.ts), run by whoever owns the session's cache — the runtime Worker for
 * the onnx runtime, so a decode step goes socket → Worker → onnxruntime → socket without waking
 * the main thread (each thread wake-up costs 0.3–0.7 ms on a 2-core VM). The frames are the
 * inference protocol's: `step` → `result`, `close` ends; any failure is one error frame, then the
 * connection closes. Never throws.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import {
  type DirectFrameChannel,
  type DirectListener,
  protocolError,
  protocolMessage,
  tensor,
  toProtocolCode,
  type WireDType,
} from "../wire/mod.ts";
import { timeoutSignal } from "../util/abort.ts";
import type {
  DirectEnd,
  DirectOfferOptions,
  DirectServing,
  DirectStepEvent,
  HiddenStates,
  StepOptions,
} from "./types.ts";

/** What the served session computes. */
export interface DirectStepTarget {
  readonly batch: number;
  readonly hiddenSize: number;
  readonly dtype: WireDType;
  step(
    hidden: { data: Float32Array; shape: [number, number, number] },
    startFromPosition?: number,
    hypoIds?: number[],
  ): Promise<{ data: Float32Array; shape: readonly number[] }>;
}

/** Why the owner ends a served connection: with an error frame (`error`), or quietly. */
export interface DirectCancel {
  error?: { code: string; message: string; hint?: string };
}

export interface ServedDirect {
  /** Settles when the connection ended; never rejects. */
  readonly ended: Promise<DirectEnd>;
  /** Ends the connection (after the step in progress, if any). */
  cancel(reason?: DirectCancel): void;
}

/** Serves `target`'s steps from `channel` until the client closes, the connection fails or `cancel`. */
export function serveDirectSteps(
  channel: DirectFrameChannel,
  target: DirectStepTarget,
  onStep?: (event: DirectStepEvent) => void,
): ServedDirect {
  const stop = new AbortController();
  let cancelled: DirectCancel | undefined;
  const ended = (async (): Promise<DirectEnd> => {
    let stepId: number | undefined;
    try {
      for (;;) {
        stepId = undefined;
        const msg = await channel.read({ signal: stop.signal });
        if (msg === null || msg.type === "close") {
          await channel.close();
          return { kind: "closed" };
        }
        if (msg.type !== "step") throw protocolError("BAD_FRAME", `expected step or close, got ${msg.type}`);
        stepId = msg.stepId;
        const [b, t, h] = msg.hidden.shape;
        if (b !== target.batch || h !== target.hiddenSize) {
          throw protocolError(
            "BAD_FRAME",
            `step hidden shape [${msg.hidden.shape}] must be [${target.batch}, T, ${target.hiddenSize}]`,
          );
        }
        const t0 = performance.now();
        const out = await target.step(
          { data: msg.hidden.data, shape: [b, t, h] },
          msg.startFromPosition,
          msg.hypoIds,
        );
        const computeMs = performance.now() - t0;
        // no per-step write timer: a client that stops reading is ended by its session (idle
        // timeout, control stream), whose cancel closes the connection under a blocked write
        await channel.write({
          type: "result",
          stepId,
          hidden: tensor(out.data, out.shape, target.dtype),
          computeMs,
        });
        onStep?.({ tokens: b * t, computeMs });
      }
    } catch (err) {
      if (cancelled && !cancelled.error) {
        channel.abort();
        return { kind: "closed" };
      }
      const code = cancelled?.error?.code ?? toProtocolCode(err);
      const message = cancelled?.error?.message ?? protocolMessage(err);
      const hint = cancelled?.error?.hint;
      const w = timeoutSignal(5_000);
      try {
        if (channel.writable) {
          await channel.write(
            {
              type: "error",
              code,
              message,
              ...(hint ? { hint } : {}),
              ...(stepId === undefined ? {} : { stepId }),
            },
            { signal: w.signal },
          );
        }
        await channel.close();
      } catch {
        channel.abort();
      } finally {
        w.clear();
      }
      return { kind: "failed", code, message, ...(stepId === undefined ? {} : { stepId }) };
    }
  })();
  return {
    ended,
    cancel(reason = {}) {
      cancelled ??= reason;
      stop.abort(new Error("cancelled"));
    },
  };
}

/**
 * A direct path served on the calling thread (the runtime Worker, or `FakeBackend` on the main
 * thread): an offer from `listener`; once attached, `session`'s steps are served from the connection.
 */
export function offerDirectHere(
  listener: DirectListener,
  session: {
    readonly batch: number;
    step(hidden: HiddenStates, options?: StepOptions): Promise<HiddenStates>;
  },
  hiddenSize: number,
  options: DirectOfferOptions,
): DirectServing {
  const ticket = listener.offer();
  let served: ServedDirect | undefined;
  let ended!: (e: DirectEnd) => void;
  const endedP = new Promise<DirectEnd>((r) => (ended = r));
  const attached = ticket.attached.then((ch) => {
    if (!ch) return false;
    served = serveDirectSteps(ch, {
      batch: session.batch,
      hiddenSize,
      dtype: options.dtype,
      step: (hidden, startFromPosition, hypoIds) => session.step(hidden, { startFromPosition, hypoIds }),
    }, options.onStep);
    void served.ended.then(ended);
    return true;
  });
  const cancel = (error?: DirectCancel["error"]) => {
    if (served) served.cancel({ error });
    else ticket.cancel();
  };
  return { offer: ticket.offer, attached, ended: endedP, cancel };
}

/** `NO_DIRECT`: a direct path was asked of a runtime started without a listener. */
export function noDirectError(): RuntimeError {
  return new RuntimeError("NO_DIRECT", "this runtime was started without a direct-path listener", {
    hint: "start the runtime with the direct option",
  });
}
