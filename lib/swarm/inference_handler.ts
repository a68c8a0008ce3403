/**
 * Server side of `/plumise/inference/1.0.0`: `open` → `opened` (cache reserved at once or
 * refused), then `step` → `result` until `close` or the stream ends; every failure is one
 * error frame followed by closing the stream. The session is freed however the stream ends.
 * @module
 */
import type { BlockRuntime, DirectServing } from "../runtime/types.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import { untilAborted } from "../util/abort.ts";
import { protocolError, tensor, type WireMessage } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import type { ManagedSession, SessionManager } from "./session_manager.ts";
import { protocolMessage, toProtocolCode } from "../wire/mod.ts";
import { type PunchDeps, servePunch } from "./punch_session.ts";
import { closeWithin, DEFAULT_WRITE_MS, readFirst, replyError, writeWithin } from "./stream_replies.ts";

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
  /**
   * Offer inference sessions the runtime's direct path when it has one (default true; see
   * lib/wire/direct_channel.ts).
   */
  direct?: boolean;
  /**
   * Offer sessions that reach this server through a relay a hole punch (HOLE_PUNCH; see
   * punch_session.ts); absent: never.
   */
  punch?: PunchDeps;
  /** The client's peer id: whose share of the sessions an open takes (SessionManager). */
  client?: string;
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

/**
 * After `opened` with a direct offer: whichever comes first decides the session's path. The
 * client attaching the direct path (the runtime then serves the steps; the stream is the
 * session's control, and its end — or anything arriving on it — ends the session), or a frame on
 * the stream (the client kept the stream; the offer is withdrawn and that frame is returned).
 * Returns `{served: true}` once a direct session is over.
 */
async function serveOrKeepStream(
  channel: FrameChannel,
  serving: DirectServing,
  managed: ManagedSession,
  logger: Logger,
): Promise<{ served: true } | { served: false; first: WireMessage | null }> {
  const signal = managed.signal;
  const control = channel.read({ signal }).then((msg) => ({ msg }), (err: unknown) => ({ err }));
  const won = await Promise.race([serving.attached.then((ok) => ({ ok })), control]);
  if (!("ok" in won) || !won.ok) {
    serving.cancel();
    const r = "ok" in won ? await control : won;
    if ("err" in r) throw r.err;
    return { served: false, first: r.msg };
  }
  // The session's end (idle, age cap, server stopping) must reach the client as its error frame:
  // cancel synchronously inside abort(), before the session manager closes the session (whose
  // own quiet cancel then has no effect).
  const onAbort = () =>
    serving.cancel({ code: toProtocolCode(signal.reason), message: protocolMessage(signal.reason) });
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  try {
    const end = await Promise.race([
      serving.ended.then((e) => ({ e })),
      control.then((c) => ({ c })),
      untilAborted(signal).then(() => ({ aborted: true })),
    ]);
    if ("e" in end) {
      logger.debug("direct session ended", { end: end.e });
      if (end.e.kind === "closed") await closeWithin(channel, DEFAULT_WRITE_MS);
      else channel.abort();
    } else if ("c" in end && !signal.aborted) {
      // the client ended its control stream (or broke the protocol on it): end quietly
      serving.cancel();
      await serving.ended;
      channel.abort();
    } else {
      await serving.ended;
      channel.abort();
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
  return { served: true };
}

/** Serves one inference stream to its end. Never throws. */
export async function serveInferenceStream(
  channel: FrameChannel,
  deps: HandlerDeps & { sessions: SessionManager },
): Promise<void> {
  let managed: ManagedSession | undefined;
  let stepId: number | undefined;
  /** Where the steps travel: the stream, or a connection punched through to the client. */
  let io: FrameChannel = channel;
  try {
    const first = await readFirst(channel, deps.firstFrameMs ?? 10_000);
    const writeMs = deps.writeMs ?? DEFAULT_WRITE_MS;
    if (first === null) return await closeWithin(channel, writeMs);
    if (first.type !== "open") {
      throw protocolError("BAD_FRAME", `expected open as the first frame, got ${first.type}`);
    }
    checkSpan(deps, first.model, first.start, first.end);
    managed = await deps.sessions.open(first, deps.client);
    const session = managed;
    deps.metrics.addRequest("inference");
    const hiddenSize = deps.runtime.info().hiddenSize;
    // through a relay the client cannot reach the direct port; it may punch a hole instead
    const punch = channel.relayed && deps.punch ? deps.punch : undefined;
    const serving = deps.direct === false || channel.relayed
      ? undefined
      : await session.session.offerDirect?.({
        dtype: first.dtype,
        onStep: (e) => {
          deps.metrics.addTokens(e.tokens);
          deps.metrics.observeLatency(e.computeMs);
          deps.sessions.touch(session);
        },
      }).catch((err) => void deps.logger.debug("no direct offer", { err }));
    try {
      await writeWithin(
        channel,
        {
          type: "opened",
          sessionId: first.sessionId,
          start: first.start,
          end: first.end,
          cacheTokensLeft: deps.runtime.info().cacheTokensLeft,
          ...(serving ? { direct: serving.offer } : {}),
          ...(punch ? { punch: true } : {}),
        },
        writeMs,
        session.signal,
      );
    } catch (err) {
      serving?.cancel();
      throw err;
    }
    let pending: WireMessage | null | undefined;
    if (serving) {
      const r = await serveOrKeepStream(channel, serving, session, deps.logger);
      if (r.served) return;
      pending = r.first;
    }
    if (punch) {
      const msg = pending !== undefined ? pending : await channel.read({ signal: managed.signal });
      pending = msg;
      if (msg?.type === "punch") {
        const r = await servePunch(channel, msg, punch, { signal: managed.signal, logger: deps.logger });
        if ("punched" in r) {
          io = r.punched;
          pending = undefined;
          deps.logger.debug("session punched through to the client", { sessionId: first.sessionId });
        } else pending = r.first;
      }
    }
    for (;;) {
      stepId = undefined;
      const msg = pending !== undefined ? pending : await io.read({ signal: managed.signal });
      pending = undefined;
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
      await writeWithin(
        io,
        {
          type: "result",
          stepId,
          hidden: tensor(out.data, out.shape, first.dtype),
          computeMs,
        },
        writeMs,
        managed.signal,
      );
    }
    if (io !== channel) await closeWithin(io, writeMs);
    await closeWithin(channel, writeMs);
  } catch (err) {
    const code = toProtocolCode(managed?.signal.aborted ? managed.signal.reason : err);
    deps.logger.debug("inference stream failed", { code, err, stepId });
    await replyError(io, code, protocolMessage(managed?.signal.aborted ? managed.signal.reason : err), {
      stepId,
    });
    if (io !== channel) channel.abort();
  } finally {
    if (managed) await deps.sessions.close(managed);
  }
}
