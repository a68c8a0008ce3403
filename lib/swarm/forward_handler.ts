/**
 * Server side of `/plumise/forward/1.0.0`: one `forward` frame → one `forward_result` (no
 * cache), or an error frame; then the stream is closed. Admission goes through the server's
 * `ForwardGate` (forward_gate.ts): at most its `maxConcurrent` forwards in the runtime, at most
 * `maxQueued` waiting (the rest `BUSY` at once), and a waiting one is dropped, unrun, when its
 * deadline passes (`forward.timeoutMs`, capped by the server's) or its requester resets the stream.
 * @module
 */
import { timeoutSignal } from "../util/abort.ts";
import { protocolError, tensor } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { ForwardGate } from "./forward_gate.ts";
import { checkSpan, type HandlerDeps } from "./inference_handler.ts";
import { closeWithin, DEFAULT_WRITE_MS, readFirst, replyError, writeWithin } from "./stream_replies.ts";
import { protocolMessage, toProtocolCode } from "../wire/mod.ts";

/** Used when the caller passes no gate (tests, tools): one with the default limits per runtime. */
const defaultGates = new WeakMap<object, ForwardGate>();

function gateOf(deps: HandlerDeps & { forwards?: ForwardGate }): ForwardGate {
  if (deps.forwards) return deps.forwards;
  let gate = defaultGates.get(deps.runtime);
  if (!gate) defaultGates.set(deps.runtime, gate = new ForwardGate());
  return gate;
}

/** Serves one forward request. Never throws. */
export async function serveForwardStream(
  channel: FrameChannel,
  deps: HandlerDeps & { forwards?: ForwardGate },
): Promise<void> {
  const gone = new AbortController();
  try {
    const writeMs = deps.writeMs ?? DEFAULT_WRITE_MS;
    const msg = await readFirst(channel, deps.firstFrameMs ?? 10_000);
    if (msg === null) return await closeWithin(channel, writeMs);
    if (msg.type !== "forward") throw protocolError("BAD_FRAME", `expected forward, got ${msg.type}`);
    checkSpan(deps, msg.model, msg.start, msg.end);
    const [b, t, h] = msg.hidden.shape;
    const hiddenSize = deps.runtime.info().hiddenSize;
    if (h !== hiddenSize) throw protocolError("BAD_FRAME", `forward hidden size ${h} must be ${hiddenSize}`);
    const gate = gateOf(deps);
    const deadline = gate.deadline(msg.timeoutMs);
    // the requester gives up by resetting the stream: a read that fails (nothing else is sent)
    channel.read({ signal: gone.signal }).catch((err) => gone.abort(err));
    const release = await gate.acquire(deadline, { signal: gone.signal });
    const timer = timeoutSignal(Math.max(1, deadline - gate.now()), gone.signal);
    let out: Awaited<ReturnType<typeof deps.runtime.forward>>;
    const t0 = performance.now();
    try {
      out = await deps.runtime.forward(
        msg.start,
        msg.end,
        { data: msg.hidden.data, shape: [b, t, h] },
        {
          signal: timer.signal,
        },
      );
    } finally {
      timer.clear();
      // the slot is the runtime's: a requester slow to read its reply does not hold it
      release();
    }
    const computeMs = performance.now() - t0;
    deps.metrics.addRequest("forward");
    deps.metrics.addTokens(b * t);
    deps.metrics.observeLatency(computeMs);
    await writeWithin(
      channel,
      {
        type: "forward_result",
        hidden: tensor(out.data, out.shape, msg.hidden.dtype),
        computeMs,
      },
      writeMs,
      gone.signal,
    );
    await closeWithin(channel, writeMs);
  } catch (err) {
    deps.logger.debug("forward stream failed", { err });
    if (gone.signal.aborted) channel.abort();
    else await replyError(channel, toProtocolCode(err), protocolMessage(err));
  } finally {
    gone.abort();
  }
}
