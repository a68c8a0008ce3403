/**
 * Server side of `/plumise/inference/1.0.0`: `open` → `opened` (cache reserved at once or
 * refused), then `step` → `result` until `close` or the stream ends; every failure is one
 * error frame followed by closing the stream. The session is freed however the stream ends.
 * @module
 */
import type { BlockRuntime } from "../runtime/types.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import { timeoutSignal } from "../util/abort.ts";
import { type ErrorCode, protocolError, tensor, type WireMessage } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import type { ManagedSession, SessionManager } from "./session_manager.ts";
import { protocolMessage, toProtocolCode } from "./_protocol_errors.ts";

export interface HandlerDeps {
  runtime: BlockRuntime;
  /** Model id this server announces. */
  model: string;
  metrics: Metrics;
  logger: Logger;
  /** How long to wait for the first frame of a stream (default 10 s). */
  firstFrameMs?: number;
  /** How long a reply may take to write (default 30 s). */
  writeMs?: number;
}

/** Writes an error frame, then closes; never throws. */
export async function replyError(
  channel: FrameChannel,
  code: ErrorCode,
  message: string,
  extra: { hint?: string; stepId?: number } = {},
  writeMs = 5_000,
): Promise<void> {
  const t = timeoutSignal(writeMs);
  try {
    if (channel.writable) {
      await channel.write({ type: "error", code, message, ...extra }, { signal: t.signal });
    }
    await channel.close();
  } catch {
    channel.abort();
  } finally {
    t.clear();
  }
}

/** Checks model and span against what the runtime serves. */
export function checkSpan(deps: HandlerDeps, model: string, start: number, end: number): void {
  if (model !== deps.model) {
    throw protocolError(
      "WRONG_MODEL",
      `this server serves ${JSON.stringify(deps.model)}, not ${JSON.stringify(model)}`,
    );
  }
  const info = deps.runtime.info();
  if (start < info.start || end > info.end) {
    throw protocolError(
      "SPAN_NOT_SERVED",
      `blocks [${start}, ${end}) are not inside the served span [${info.start}, ${info.end})`,
    );
  }
}

/** Reads one frame with a timeout; null on clean end. */
export async function readFirst(channel: FrameChannel, ms: number): Promise<WireMessage | null> {
  const t = timeoutSignal(ms);
  try {
    return await channel.read({ signal: t.signal });
  } finally {
    t.clear();
  }
}

/** Serves one inference stream to its end. Never throws. */
export async function serveInferenceStream(
  channel: FrameChannel,
  deps: HandlerDeps & { sessions: SessionManager },
): Promise<void> {
  let managed: ManagedSession | undefined;
  let stepId: number | undefined;
  try {
    const first = await readFirst(channel, deps.firstFrameMs ?? 10_000);
    if (first === null) return await channel.close();
    if (first.type !== "open") {
      throw protocolError("BAD_FRAME", `expected open as the first frame, got ${first.type}`);
    }
    checkSpan(deps, first.model, first.start, first.end);
    managed = await deps.sessions.open(first);
    deps.metrics.addRequest("inference");
    const hiddenSize = deps.runtime.info().hiddenSize;
    await channel.write({
      type: "opened",
      sessionId: first.sessionId,
      start: first.start,
      end: first.end,
      cacheTokensLeft: deps.runtime.info().cacheTokensLeft,
    });
    for (;;) {
      stepId = undefined;
      const msg = await channel.read({ signal: managed.signal });
      if (msg === null || msg.type === "close") break;
      if (msg.type !== "step") throw protocolError("BAD_FRAME", `expected step or close, got ${msg.type}`);
      stepId = msg.stepId;
      const [b, t, h] = msg.hidden.shape;
      if (b !== first.batch || h !== hiddenSize) {
        throw protocolError(
          "BAD_FRAME",
          `step hidden shape [${msg.hidden.shape}] must be [${first.batch}, T, ${hiddenSize}]`,
        );
      }
      deps.sessions.touch(managed);
      const t0 = performance.now();
      const out = await managed.session.step(
        { data: msg.hidden.data, shape: [b, t, h] },
        { startFromPosition: msg.startFromPosition, hypoIds: msg.hypoIds, signal: managed.signal },
      );
      const computeMs = performance.now() - t0;
      deps.metrics.addTokens(b * t);
      deps.metrics.observeLatency(computeMs);
      deps.sessions.touch(managed);
      await channel.write({
        type: "result",
        stepId,
        hidden: tensor(out.data, out.shape, first.dtype),
        computeMs,
      });
    }
    await channel.close();
  } catch (err) {
    const code = toProtocolCode(managed?.signal.aborted ? managed.signal.reason : err);
    deps.logger.debug("inference stream failed", { code, err, stepId });
    await replyError(channel, code, protocolMessage(managed?.signal.aborted ? managed.signal.reason : err), {
      stepId,
    });
  } finally {
    if (managed) await deps.sessions.close(managed);
  }
}
