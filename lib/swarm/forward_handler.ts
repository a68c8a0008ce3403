/**
 * Server side of `/plumise/forward/1.0.0`: one `forward` frame → one `forward_result` (no
 * cache), or an error frame; then the stream is closed.
 * @module
 */
import { timeoutSignal } from "../util/abort.ts";
import { protocolError, tensor } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { checkSpan, type HandlerDeps, readFirst, replyError } from "./inference_handler.ts";
import { protocolMessage, toProtocolCode } from "../wire/mod.ts";

/** Serves one forward request. Never throws. */
export async function serveForwardStream(
  channel: FrameChannel,
  deps: HandlerDeps & { timeoutMs?: number },
): Promise<void> {
  try {
    const msg = await readFirst(channel, deps.firstFrameMs ?? 10_000);
    if (msg === null) return await channel.close();
    if (msg.type !== "forward") throw protocolError("BAD_FRAME", `expected forward, got ${msg.type}`);
    checkSpan(deps, msg.model, msg.start, msg.end);
    const [b, t, h] = msg.hidden.shape;
    const hiddenSize = deps.runtime.info().hiddenSize;
    if (h !== hiddenSize) throw protocolError("BAD_FRAME", `forward hidden size ${h} must be ${hiddenSize}`);
    const t0 = performance.now();
    const timer = timeoutSignal(deps.timeoutMs ?? 120_000);
    const out = await deps.runtime.forward(msg.start, msg.end, { data: msg.hidden.data, shape: [b, t, h] }, {
      signal: timer.signal,
    }).finally(timer.clear);
    const computeMs = performance.now() - t0;
    deps.metrics.addRequest("forward");
    deps.metrics.addTokens(b * t);
    deps.metrics.observeLatency(computeMs);
    await channel.write({
      type: "forward_result",
      hidden: tensor(out.data, out.shape, msg.hidden.dtype),
      computeMs,
    });
    await channel.close();
  } catch (err) {
    deps.logger.debug("forward stream failed", { err });
    await replyError(channel, toProtocolCode(err), protocolMessage(err));
  }
}
