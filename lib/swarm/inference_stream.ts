/**
 * `InferenceStream`: one open inference stream to one server (over libp2p or the session's direct
 * path): steps and their results, pushed steps (`send`, `receive`), the links to the next server
 * (`linkRequest`, `linkTo`) and close. Opened by `ProtocolClient.openInference`
 * (swarm_client_transport.ts).
 * @module
 */
import type { HiddenStates } from "../runtime/types.ts";
import { SwarmError } from "../errors.ts";
import { type AbortOptions, timeoutSignal } from "../util/abort.ts";
import { type MessageType, tensor, type WireDType, type WireMessage } from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";

import { type ClientTimeouts, remoteError } from "./protocol_exchange.ts";

/** How an inference session's steps travel. */
export type SessionPath = "direct" | "stream" | "relayed" | "punched";

export interface StepResult {
  hidden: HiddenStates;
  /** Server-side compute time in ms. */
  computeMs: number;
}

/** The reply that ends a push: this server's output and those of the spans the step was pushed through. */
export interface PushReply extends StepResult {
  /** Outputs of the earlier spans of the push, oldest first (empty when the first span replied). */
  trail: HiddenStates[];
}

/** Where another server can push a session's input: the `link_offer` and the host the client reached it at. */
export interface LinkTicket {
  /** The input link's number in the receiving session (`link_lost` names it). */
  readonly link: number;
  readonly host: string;
  readonly port: number;
  readonly ticket: string;
  readonly key: string;
}

export interface InferenceStepOptions {
  startFromPosition?: number;
  hypoIds?: number[];
  /**
   * The step's id; must increase from step to step of a stream (default: the stream's own
   * counter). Linked sessions of one route share the client session's ids.
   */
  stepId?: number;
  signal?: AbortSignal;
}

export interface ReceiveOptions {
  /** Aborts the wait and closes the stream (the caller gave up on the server). */
  signal?: AbortSignal;
  /**
   * Ends the wait with `undefined`, the stream kept (another server of the push replied, the push
   * ran out of time, the caller gave up on the step). With it, the stream's own step timeout does
   * not apply: the caller bounds the wait.
   */
  until?: AbortSignal;
  /** The result of a step pushed into this session (else: of the client's own step). */
  pushed: boolean;
  /** End the wait with "lost" when this input link is reported lost. */
  link?: number;
}

/** Lost links remembered per stream (a server may name any number). */
const MAX_LOST_LINKS = 1024;

/** One open inference stream to one server. */
export class InferenceStream {
  readonly #channel: FrameChannel;
  readonly #timeouts: Required<ClientTimeouts>;
  readonly #host: string | undefined;
  readonly #plainLinks: boolean;
  readonly dtype: WireDType;
  readonly cacheTokensLeft: number;
  #nextStep = 0;
  #closed = false;
  readonly #lostLinks = new Set<number>();

  constructor(
    channel: FrameChannel,
    dtype: WireDType,
    cacheTokensLeft: number,
    timeouts: Required<ClientTimeouts>,
    /** The host of the server's direct path, when the stream took it (links need one). */
    directHost?: string,
    /** Whether links this session asks for may carry plain frames on loopback (`link_to.plain`). */
    plainLinks = true,
    /** How the steps travel. */
    readonly path: SessionPath = directHost === undefined ? "stream" : "direct",
  ) {
    this.#plainLinks = plainLinks;
    this.#channel = channel;
    this.dtype = dtype;
    this.cacheTokensLeft = cacheTokensLeft;
    this.#timeouts = timeouts;
    this.#host = directHost;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the session can be linked to other servers' sessions (it runs on a direct path). */
  get linkable(): boolean {
    return this.#host !== undefined;
  }

  /** The host of the server's direct path, when the stream took it. */
  get directHost(): string | undefined {
    return this.#host;
  }

  /** Whether the server reported input link `link` lost (seen while reading this stream). */
  linkLost(link: number): boolean {
    return this.#lostLinks.has(link);
  }

  /** Sends one step and waits for its result. On any failure the stream is dropped. */
  async step(hidden: HiddenStates, options: InferenceStepOptions = {}): Promise<StepResult> {
    const stepId = this.#stepId(options.stepId);
    const r = await this.#exchange({
      signal: options.signal,
      expected: "result",
      request: {
        type: "step",
        stepId,
        hidden: tensor(hidden.data, hidden.shape, this.dtype),
        startFromPosition: options.startFromPosition,
        hypoIds: options.hypoIds,
      },
      match: (m) => m.type === "result" && m.stepId === stepId && !m.pushed ? m : undefined,
      stepId,
    });
    const { hidden: y, computeMs } = pushReply(r as Extract<WireMessage, { type: "result" }>);
    return { hidden: y, computeMs };
  }

  /**
   * Sends one step whose output the server pushes `push` servers down the linked route; the
   * reply comes from whichever server of the push stops it (`receive`). Rejects (and drops the
   * stream) only when the step cannot be written.
   */
  async send(hidden: HiddenStates, options: InferenceStepOptions & { push: number }): Promise<void> {
    const stepId = this.#stepId(options.stepId);
    const t = timeoutSignal(this.#timeouts.stepMs, options.signal);
    try {
      await this.#channel.write({
        type: "step",
        stepId,
        hidden: tensor(hidden.data, hidden.shape, this.dtype),
        startFromPosition: options.startFromPosition,
        hypoIds: options.hypoIds,
        ...(options.push ? { push: options.push } : {}),
      }, { signal: t.signal });
    } catch (err) {
      this.#drop(err);
      throw err;
    } finally {
      t.clear();
    }
  }

  /**
   * Waits for this session's reply to step `stepId`; "lost" once `options.link` is reported
   * lost, `undefined` once `options.until` aborts (the stream stays usable).
   */
  async receive(stepId: number, options: ReceiveOptions): Promise<PushReply | "lost" | undefined> {
    // from now on a reply to this step (or an earlier one) that nobody waits for is stale
    this.#nextStep = Math.max(this.#nextStep, stepId + 1);
    const r = await this.#exchange({
      signal: options.signal,
      until: options.until,
      expected: "result",
      match: (m) =>
        m.type === "result" && m.stepId === stepId && !!m.pushed === options.pushed ? m : undefined,
      stepId,
      link: options.link,
    });
    return r === "lost" || r === undefined ? r : pushReply(r as Extract<WireMessage, { type: "result" }>);
  }

  /** Asks the server for a ticket that another server can push this session's input with. */
  async linkRequest({ signal }: AbortOptions = {}): Promise<LinkTicket> {
    const host = this.#host;
    if (host === undefined) {
      throw new SwarmError("NO_LINK", "this session does not run on a direct path", {
        hint: "links between servers need both sessions on direct paths",
      });
    }
    const r = await this.#exchange({
      signal,
      expected: "link_offer",
      request: { type: "link_request" },
      match: (m) => m.type === "link_offer" || m.type === "linked" ? m : undefined,
    }) as Extract<WireMessage, { type: "link_offer" | "linked" }>;
    if (r.type === "linked") throw linkRefused(r.reason);
    return { link: r.link, host, port: r.port, ticket: r.ticket, key: r.key };
  }

  /** Has the server push its outputs to the holder of `ticket` (from that server's `linkRequest`). */
  async linkTo(ticket: LinkTicket, { signal }: AbortOptions = {}): Promise<void> {
    const { host, port, ticket: t, key } = ticket;
    const r = await this.#exchange({
      signal,
      expected: "linked",
      request: {
        type: "link_to",
        host,
        port,
        ticket: t,
        key,
        ...(this.#plainLinks ? {} : { plain: false }),
      },
      match: (m) => m.type === "linked" ? m : undefined,
    }) as Extract<WireMessage, { type: "linked" }>;
    if (!r.ok) throw linkRefused(r.reason);
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new SwarmError("STREAM_CLOSED", "inference stream is closed", { hint: "open a new one" });
    }
  }

  #stepId(given: number | undefined): number {
    this.#assertOpen();
    const stepId = given ?? this.#nextStep;
    this.#nextStep = stepId + 1;
    return stepId;
  }

  #drop(err: unknown): void {
    this.#closed = true;
    this.#channel.abort(err instanceof Error ? err : undefined);
  }

  /**
   * Writes `request` (if any), then reads until `match` takes a frame. Results of earlier steps
   * (pushes the client gave up on) are skipped, lost links noted (`link`: the wait ends with
   * "lost"). Any failure drops the stream; `until` ends the wait with `undefined` and keeps it.
   */
  async #exchange(o: {
    signal?: AbortSignal;
    until?: AbortSignal;
    expected: MessageType;
    request?: WireMessage;
    match: (m: WireMessage) => WireMessage | undefined;
    stepId?: number;
    link?: number;
  }): Promise<WireMessage | "lost" | undefined> {
    this.#assertOpen();
    // a wait with `until` is bounded by its caller (a push's run timer), not by one step's time
    const t = o.until ? untimed(o.signal) : timeoutSignal(this.#timeouts.stepMs, o.signal);
    const read = o.until ? AbortSignal.any([t.signal, o.until]) : t.signal;
    try {
      if (o.request) await this.#channel.write(o.request, { signal: t.signal });
      for (;;) {
        const reply = await this.#channel.read({ signal: read });
        if (reply === null || reply.type === "error") throw remoteError(reply, o.expected);
        const m = o.match(reply);
        if (m !== undefined) return m;
        if (reply.type === "link_lost") {
          this.#lostLinks.add(reply.link);
          // a server can name any number of links: the oldest are forgotten past a bound
          if (this.#lostLinks.size > MAX_LOST_LINKS) {
            this.#lostLinks.delete(this.#lostLinks.values().next().value!);
          }
          if (reply.link === o.link) return "lost";
        } else if (reply.type === "result" && reply.stepId <= Math.max(o.stepId ?? -1, this.#nextStep - 1)) {
          // a reply the client gave up waiting for: to a push that failed elsewhere, or to a
          // pushed step that the client then sent itself
          continue;
        } else {
          throw new SwarmError(
            "BAD_FRAME",
            `server replied ${reply.type}${reply.type === "result" ? ` for step ${reply.stepId}` : ""}` +
              (o.stepId === undefined ? "" : `, expected the result of step ${o.stepId}`),
            { hint: "the server speaks another protocol version" },
          );
        }
      }
    } catch (err) {
      if (o.until?.aborted && err === o.until.reason && !t.signal.aborted) return undefined;
      this.#drop(err);
      throw err;
    } finally {
      t.clear();
    }
  }

  /** Sends `close` and ends the stream; never throws; idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const t = timeoutSignal(2_000);
    try {
      await this.#channel.write({ type: "close" }, { signal: t.signal });
      await this.#channel.close();
    } catch {
      this.#channel.abort();
    } finally {
      t.clear();
    }
  }
}

/** Splits a result's `hidden` into the trail of earlier outputs and this server's output. */
function pushReply(m: Extract<WireMessage, { type: "result" }>): PushReply {
  const [rows, t, h] = m.hidden.shape;
  const parts = (m.trail ?? 0) + 1, b = rows / parts, n = b * t * h;
  const part = (i: number): HiddenStates => ({
    data: m.hidden.data.subarray(i * n, (i + 1) * n),
    shape: [b, t, h],
  });
  const trail: HiddenStates[] = [];
  for (let i = 0; i < parts - 1; i++) trail.push(part(i));
  return { hidden: part(parts - 1), computeMs: m.computeMs, trail };
}

/** `timeoutSignal`'s shape without a timer: aborts only with `parent`. */
function untimed(parent?: AbortSignal): { signal: AbortSignal; clear: () => void } {
  return { signal: parent ?? new AbortController().signal, clear: () => {} };
}

function linkRefused(reason: string | undefined): SwarmError {
  return new SwarmError("LINK_REFUSED", `the server refused the link: ${reason ?? "no reason given"}`, {
    hint: "steps of this session go through the client instead",
  });
}
