/**
 * `serveDirectSteps`: the server side of an inference session's direct path
 * (lib/wire/direct_channel.ts), run by whoever owns the session's cache — the runtime Worker for
 * the onnx runtime, so a decode step goes socket → Worker → onnxruntime → socket without waking
 * the main thread (a thread wake-up is a sizeable part of a decode step's hop: docs/benchmarks.md,
 * "Direct path"). The frames are the
 * inference protocol's: `step` → `result`, `close` ends; any failure is one error frame, then the
 * connection closes. Never throws. Sessions may also be linked to the next server of the route
 * (`DirectLinks`, the `link_*` messages), which then gets this session's outputs pushed.
 * @module
 */
import { type PlumiseError, RuntimeError, WireError } from "../errors.ts";
import {
  type DirectFrameChannel,
  type DirectListener,
  type DirectTicket,
  linkDirect,
  protocolError,
  protocolMessage,
  type StepMessage,
  tensor,
  toProtocolCode,
  type WireDType,
  type WireMessage,
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

/**
 * Links between the servers of a route (Petals' `rpc_push`): with them, a step's output goes
 * straight to the next server of the route instead of back through the client, which takes the
 * client's two legs and thread wake-ups per hop off the path. The client sets a link up over the
 * direct paths of both sessions: `link_request` to the next server (a single-use ticket on its
 * listener: the input link), then `link_to` with that ticket to this server (which connects: the
 * output link). A step with `push: n` is then forwarded as a step with `push: n - 1`, and only the
 * server that does not forward replies to the client. The client still needs every span's output
 * (the next span's input history, replayed after a failure), so a pushed step carries the outputs
 * of the spans it went through (`trail`) and the reply brings them all back in one frame: one
 * client wake-up per push instead of one per hop. Nothing here is needed for correctness: when a
 * push fails anywhere, the client sends the step again, span by span (steps roll the caches back
 * to their `startFromPosition`, so running one twice is harmless; steps that reorder the cache,
 * with `hypoIds`, are never pushed on).
 */
export interface DirectLinks {
  /** Offers the tickets of input links. */
  readonly listener: DirectListener;
  /** Most input links open at once (default 4; a route needs one, a failover leaves a dead one briefly). */
  readonly maxInputs?: number;
}

/** Writing a pushed step may take this long before the output link is dropped. */
const PUSH_WRITE_MS = 5_000;

type Source = { readonly kind: "client" | "in" | "out"; readonly ch: DirectFrameChannel };
type Event =
  | { kind: "read"; src: Source; msg: WireMessage | null }
  | { kind: "read"; src: Source; err: unknown }
  | { kind: "attached"; ticket: DirectTicket; link: number; ch: DirectFrameChannel | null };

/** How long a write under way may take to finish when a session is cancelled with an error. */
const ERROR_WRITE_MS = 5_000;

/**
 * Serves `target`'s steps from `channel` until the client closes, the connection fails or
 * `cancel`; with `links`, also steps pushed by the previous server and pushes to the next one.
 */
export function serveDirectSteps(
  channel: DirectFrameChannel,
  target: DirectStepTarget,
  onStep?: (event: DirectStepEvent) => void,
  links?: DirectLinks,
): ServedDirect {
  const stop = new AbortController();
  /**
   * Aborts writes to the client: at once on a quiet cancel; on a cancel with an error, once a
   * write under way had `ERROR_WRITE_MS` to finish (the error frame must follow a whole frame, or
   * the client reads a truncated one and bans an honest server).
   */
  const writes = new AbortController();
  let cancelled: DirectCancel | undefined;
  // one event queue for every source; a source is read again only once its event is handled
  // (backpressure per connection, and frames of one connection are handled in their order)
  const queue: Event[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  const post = (e: Event) => {
    if (done) {
      if (e.kind === "attached") e.ch?.abort();
      return;
    }
    queue.push(e);
    const w = wake;
    wake = undefined;
    w?.();
  };
  const arm = (src: Source) =>
    void src.ch.read({ signal: stop.signal }).then(
      (msg) => post({ kind: "read", src, msg }),
      (err) => post({ kind: "read", src, err }),
    );
  const next = async (): Promise<Event> => {
    while (queue.length === 0) await new Promise<void>((r) => (wake = r));
    return queue.shift()!;
  };
  /** Input links and their numbers (`link_offer.link`). */
  const inputs = new Map<DirectFrameChannel, number>();
  let linkSeq = 0;
  const tickets = new Set<DirectTicket>();
  let output: DirectFrameChannel | undefined;
  /**
   * Writes to the client. A client that stops reading is ended by its session (idle timeout, age
   * cap, control stream), whose `cancel` aborts the write and with it the connection.
   */
  const send = (m: WireMessage) => channel.write(m, { signal: writes.signal });
  /** Highest step id run so far: a pushed step at or below it is stale (the client sent it itself). */
  let lastStepId = -1;

  const dropOutput = () => {
    output?.abort();
    output = undefined;
  };
  const shutLinks = () => {
    done = true;
    for (const e of queue.splice(0)) if (e.kind === "attached") e.ch?.abort();
    for (const t of tickets) t.cancel();
    tickets.clear();
    for (const ch of inputs.keys()) ch.abort();
    inputs.clear();
    dropOutput();
  };
  /** Shape check; a bad pushed step ends its link, a bad client step the session. */
  const shapeError = (msg: StepMessage, pushed: boolean): PlumiseError | undefined => {
    const [rows, , h] = msg.hidden.shape;
    const parts = (msg.trail ?? 0) + 1;
    if (!pushed && parts > 1) return protocolError("BAD_FRAME", "only a pushed step carries a trail");
    if (rows === target.batch * parts && h === target.hiddenSize) return undefined;
    return protocolError(
      "BAD_FRAME",
      `step hidden shape [${msg.hidden.shape}] must be [${target.batch}${
        parts > 1 ? ` × ${parts}` : ""
      }, T, ${target.hiddenSize}]`,
    );
  };
  const runStep = async (msg: StepMessage, pushed: boolean) => {
    lastStepId = Math.max(lastStepId, msg.stepId);
    const b = target.batch, [, t, h] = msg.hidden.shape, n = b * t * h;
    const trail = msg.trail ?? 0;
    const all = msg.hidden.data;
    const input = trail ? all.slice(trail * n) : all;
    const t0 = performance.now();
    const out = await target.step({ data: input, shape: [b, t, h] }, msg.startFromPosition, msg.hypoIds);
    const computeMs = performance.now() - t0;
    // what goes on: the outputs of the push so far (a pushed step's input is the previous output)
    const carried = pushed ? trail + 1 : 0;
    const data = carried ? new Float32Array((carried + 1) * n) : out.data;
    if (carried) {
      data.set(all);
      data.set(out.data, carried * n);
    }
    const hidden = tensor(data, [b * (carried + 1), t, h], target.dtype);
    const extra = carried ? { trail: carried } : {};
    // a step that reorders the cache (hypoIds) is not pushed on: running it twice would reorder twice
    if (msg.push && output && !msg.hypoIds) {
      // the next server first: it is what the route waits for
      const w = timeoutSignal(PUSH_WRITE_MS);
      try {
        await output.write({
          type: "step",
          stepId: msg.stepId,
          hidden,
          ...(msg.startFromPosition === undefined ? {} : { startFromPosition: msg.startFromPosition }),
          ...(msg.push > 1 ? { push: msg.push - 1 } : {}),
          trail: carried,
        }, { signal: w.signal });
        onStep?.({ tokens: b * t, computeMs });
        return;
      } catch {
        dropOutput(); // not pushed: this server replies, and the client goes on from here
      } finally {
        w.clear();
      }
    }
    // no per-step write timer: `send` is ended by the session's cancel
    const reply = {
      type: "result" as const,
      stepId: msg.stepId,
      computeMs,
      ...(pushed ? { pushed: true } : {}),
    };
    try {
      await send({ ...reply, hidden, ...extra });
    } catch (err) {
      // a trail larger than this server's frame cap: the output alone (the client, missing the
      // trail, reruns the step span by span)
      if (!(carried && err instanceof WireError && err.code === "TOO_LARGE")) throw err;
      await send({ ...reply, hidden: tensor(out.data, out.shape, target.dtype) });
    }
    onStep?.({ tokens: b * t, computeMs });
  };
  const linkRequest = async () => {
    if (!links) {
      return await send({
        type: "linked",
        ok: false,
        reason: "this server does not take pushed input",
      });
    }
    const max = links.maxInputs ?? 4;
    if (inputs.size + tickets.size >= max) {
      return await send({
        type: "linked",
        ok: false,
        reason: `this session already has ${inputs.size + tickets.size} input links (at most ${max})`,
      });
    }
    const ticket = links.listener.offer();
    const link = linkSeq++;
    tickets.add(ticket);
    void ticket.attached.then((ch) => post({ kind: "attached", ticket, link, ch }));
    await send({ type: "link_offer", link, ...ticket.offer });
  };
  const linkTo = async (msg: Extract<WireMessage, { type: "link_to" }>) => {
    let reason: string | undefined;
    if (!links) reason = "this server does not push to other servers";
    else {
      try {
        // not to hosts more internal than the client, and every failure answered alike and at
        // the same moment, so a client learns nothing about the network (lib/wire/link_target.ts)
        const ch = await linkDirect(msg, {
          clientHost: channel.remoteHost,
          signal: stop.signal,
          plain: msg.plain !== false,
        });
        dropOutput();
        output = ch;
        arm({ kind: "out", ch }); // the next server sends nothing: any frame or end drops the link
      } catch (err) {
        if (stop.signal.aborted) throw err;
        reason = (err as Error).message;
      }
    }
    await send({ type: "linked", ok: reason === undefined, ...(reason ? { reason } : {}) });
  };
  const loseInput = async (ch: DirectFrameChannel) => {
    ch.abort();
    const link = inputs.get(ch);
    if (link === undefined) return;
    inputs.delete(ch);
    await send({ type: "link_lost", link });
  };

  const ended = (async (): Promise<DirectEnd> => {
    let stepId: number | undefined;
    const client: Source = { kind: "client", ch: channel };
    arm(client);
    try {
      for (;;) {
        stepId = undefined;
        const e = await next();
        if (e.kind === "attached") {
          tickets.delete(e.ticket);
          if (e.ch && stop.signal.aborted) e.ch.abort();
          else if (e.ch) {
            inputs.set(e.ch, e.link);
            arm({ kind: "in", ch: e.ch });
          }
          continue;
        }
        if (e.src.kind === "out") {
          if (e.src.ch === output) dropOutput();
          else e.src.ch.abort();
          continue;
        }
        if (e.src.kind === "in") {
          if (stop.signal.aborted) throw stop.signal.reason;
          const msg = "msg" in e ? e.msg : null;
          if (msg?.type !== "step" || shapeError(msg, true)) {
            await loseInput(e.src.ch);
            continue;
          }
          if (msg.stepId > lastStepId) {
            try {
              await runStep(msg, true);
            } catch {
              // a pushed step that cannot run (e.g. a position this cache does not have) is the
              // upstream server's fault: its link goes, this session stays (the client reruns
              // the step itself, and a failure of this server then shows on its own step)
              if (stop.signal.aborted) throw stop.signal.reason;
              await loseInput(e.src.ch);
              continue;
            }
          }
          arm(e.src);
          continue;
        }
        if ("err" in e) throw e.err;
        // cancelled: steps the client sent ahead are not run (the error follows, or the end)
        if (stop.signal.aborted) throw stop.signal.reason;
        const msg = e.msg;
        if (msg === null || msg.type === "close") {
          shutLinks();
          await channel.close();
          return { kind: "closed" };
        }
        if (msg.type === "step") {
          stepId = msg.stepId;
          const bad = shapeError(msg, false);
          if (bad) throw bad;
          await runStep(msg, false);
        } else if (msg.type === "link_request") await linkRequest();
        else if (msg.type === "link_to") await linkTo(msg);
        else throw protocolError("BAD_FRAME", `expected step, close or a link message, got ${msg.type}`);
        arm(client);
      }
    } catch (err) {
      shutLinks();
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
      if (!cancelled.error) writes.abort(new Error("cancelled"));
      else {
        const t = setTimeout(() => writes.abort(new Error("cancelled")), ERROR_WRITE_MS);
        void ended.finally(() => clearTimeout(t));
      }
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
    served = serveDirectSteps(
      ch,
      {
        batch: session.batch,
        hiddenSize,
        dtype: options.dtype,
        step: (hidden, startFromPosition, hypoIds) => session.step(hidden, { startFromPosition, hypoIds }),
      },
      options.onStep,
      { listener },
    );
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
