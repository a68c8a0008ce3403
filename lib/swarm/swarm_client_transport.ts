/**
 * The thin protocol client: open an inference stream (open → opened, step → result, close),
 * send a forward request, fetch a server's info, pull a table. The mirror of the server
 * handlers; routing, multi-server sessions and failover live in lib/swarm/client/.
 *
 * Every call takes an AbortSignal and has a default timeout. A server's error frame becomes a
 * `SwarmError` whose `code` is the protocol code (`CACHE_FULL`, `SPAN_NOT_SERVED`, ...).
 * @module
 */
import type { HiddenStates } from "../runtime/types.ts";
import { SwarmError } from "../errors.ts";
import { timeoutSignal } from "../util/abort.ts";
import {
  connectDirect,
  type InfoMessage,
  type MessageType,
  type OpenMessage,
  type SignedRecordWire,
  tensor,
  type WireDType,
  type WireLimits,
  type WireMessage,
} from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { type DirectPaths, withControl } from "./direct_paths.ts";
import {
  FORWARD_PROTOCOL as FORWARD,
  INFERENCE_PROTOCOL as INFERENCE,
  INFO_PROTOCOL as INFO,
} from "./protocol_ids.ts";
import { RECORD_PROTOCOL as RECORD, TABLE_PROTOCOL as TABLE } from "./protocol_ids.ts";

/** Opens a new stream for a protocol (libp2p dial or an in-memory pair in tests). */
export type OpenChannel = (protocol: string, signal: AbortSignal) => Promise<FrameChannel>;

export interface ClientTimeouts {
  /** Opening a stream + the first reply (default 15 s). */
  openMs?: number;
  /** One inference step (default 60 s). */
  stepMs?: number;
  /** One forward request (default 300 s). */
  forwardMs?: number;
}

/** A server's error frame, or an unexpected reply. */
export function remoteError(msg: WireMessage | null, expected: MessageType): SwarmError {
  if (msg === null) {
    return new SwarmError("STREAM_CLOSED", `server closed the stream before replying with ${expected}`, {
      hint: "the server failed or restarted; route to another server",
    });
  }
  if (msg.type === "error") {
    return new SwarmError(msg.code, `server replied ${msg.code}: ${msg.message}`, {
      hint: msg.hint || "route to another server",
      details: { remote: true, stepId: msg.stepId },
    });
  }
  return new SwarmError("BAD_FRAME", `server replied ${msg.type}, expected ${expected}`, {
    hint: "the server speaks another protocol version",
  });
}

async function exchange<T extends MessageType>(
  channel: FrameChannel,
  request: WireMessage | undefined,
  expected: T,
  ms: number,
  signal?: AbortSignal,
): Promise<Extract<WireMessage, { type: T }>> {
  const t = timeoutSignal(ms, signal);
  try {
    if (request) await channel.write(request, { signal: t.signal });
    const reply = await channel.read({ signal: t.signal });
    if (reply?.type !== expected) throw remoteError(reply, expected);
    return reply as Extract<WireMessage, { type: T }>;
  } catch (err) {
    channel.abort(err instanceof Error ? err : undefined);
    throw err;
  } finally {
    t.clear();
  }
}

/** The fields of the `open` message; `dtype` (of hidden states both ways) defaults to f32. */
export type OpenInferenceRequest = Omit<OpenMessage, "type" | "dtype"> & { dtype?: WireDType };

export interface StepResult {
  hidden: HiddenStates;
  /** Server-side compute time in ms. */
  computeMs: number;
}

/** One open inference stream to one server. */
export class InferenceStream {
  readonly #channel: FrameChannel;
  readonly #timeouts: Required<ClientTimeouts>;
  readonly dtype: WireDType;
  readonly cacheTokensLeft: number;
  #nextStep = 0;
  #closed = false;

  constructor(
    channel: FrameChannel,
    dtype: WireDType,
    cacheTokensLeft: number,
    timeouts: Required<ClientTimeouts>,
  ) {
    this.#channel = channel;
    this.dtype = dtype;
    this.cacheTokensLeft = cacheTokensLeft;
    this.#timeouts = timeouts;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one step and waits for its result. On any failure the stream is dropped. */
  async step(
    hidden: HiddenStates,
    options: { startFromPosition?: number; hypoIds?: number[]; signal?: AbortSignal } = {},
  ): Promise<StepResult> {
    if (this.#closed) {
      throw new SwarmError("STREAM_CLOSED", "inference stream is closed", { hint: "open a new one" });
    }
    const stepId = this.#nextStep++;
    try {
      const reply = await exchange(
        this.#channel,
        {
          type: "step",
          stepId,
          hidden: tensor(hidden.data, hidden.shape, this.dtype),
          startFromPosition: options.startFromPosition,
          hypoIds: options.hypoIds,
        },
        "result",
        this.#timeouts.stepMs,
        options.signal,
      );
      if (reply.stepId !== stepId) {
        throw new SwarmError("BAD_FRAME", `result for step ${reply.stepId}, expected ${stepId}`);
      }
      const [b, t, h] = reply.hidden.shape;
      return { hidden: { data: reply.hidden.data, shape: [b, t, h] }, computeMs: reply.computeMs };
    } catch (err) {
      this.#closed = true;
      throw err;
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

const defaults = (t: ClientTimeouts = {}): Required<ClientTimeouts> => ({
  openMs: t.openMs ?? 15_000,
  stepMs: t.stepMs ?? 60_000,
  forwardMs: t.forwardMs ?? 300_000,
});

export interface ProtocolClientOptions {
  /** Use the direct paths servers offer for inference sessions (off when absent). */
  directPaths?: DirectPaths;
  limits?: WireLimits;
}

/** The protocol client over some way to open channels to ONE server. */
export class ProtocolClient {
  readonly #open: OpenChannel;
  readonly #timeouts: Required<ClientTimeouts>;
  readonly #o: ProtocolClientOptions;

  constructor(open: OpenChannel, timeouts: ClientTimeouts = {}, options: ProtocolClientOptions = {}) {
    this.#open = open;
    this.#timeouts = defaults(timeouts);
    this.#o = options;
  }

  async #channel(protocol: string, signal?: AbortSignal): Promise<FrameChannel> {
    const t = timeoutSignal(this.#timeouts.openMs, signal);
    try {
      return await this.#open(protocol, t.signal);
    } finally {
      t.clear();
    }
  }

  /** Opens an inference session; rejects with the server's code (e.g. CACHE_FULL) at once. */
  async openInference(request: OpenInferenceRequest, signal?: AbortSignal): Promise<InferenceStream> {
    const dtype = request.dtype ?? "f32";
    const channel = await this.#channel(INFERENCE, signal);
    const opened = await exchange(
      channel,
      { type: "open", ...request, dtype },
      "opened",
      this.#timeouts.openMs,
      signal,
    );
    return new InferenceStream(
      await this.#direct(channel, opened, signal),
      dtype,
      opened.cacheTokensLeft,
      this.#timeouts,
    );
  }

  /** The session's step channel: its direct path when offered and reachable, else the stream. */
  async #direct(
    channel: FrameChannel,
    opened: Extract<WireMessage, { type: "opened" }>,
    signal?: AbortSignal,
  ): Promise<FrameChannel> {
    const paths = this.#o.directPaths, offer = opened.direct, host = channel.remoteHost;
    if (!paths || !offer || !host || !paths.shouldTry(host, offer.port)) return channel;
    try {
      const direct = await connectDirect(host, offer, { signal, limits: this.#o.limits });
      return withControl(direct, channel);
    } catch (err) {
      if (signal?.aborted) {
        channel.abort();
        throw err;
      }
      paths.failed(host, offer.port);
      return channel;
    }
  }

  /** Cache-less forward through `[start, end)`. */
  async forward(
    request: { model: string; start: number; end: number; hidden: HiddenStates; dtype?: WireDType },
    signal?: AbortSignal,
  ): Promise<StepResult> {
    const channel = await this.#channel(FORWARD, signal);
    const reply = await exchange(
      channel,
      {
        type: "forward",
        model: request.model,
        start: request.start,
        end: request.end,
        hidden: tensor(request.hidden.data, request.hidden.shape, request.dtype ?? "f32"),
      },
      "forward_result",
      this.#timeouts.forwardMs,
      signal,
    );
    await channel.close();
    const [b, t, h] = reply.hidden.shape;
    return { hidden: { data: reply.hidden.data, shape: [b, t, h] }, computeMs: reply.computeMs };
  }

  /** The server's signed record and live figures (the record is NOT verified here). */
  async info(signal?: AbortSignal): Promise<InfoMessage> {
    const channel = await this.#channel(INFO, signal);
    const reply = await exchange(channel, { type: "info_request" }, "info", this.#timeouts.openMs, signal);
    await channel.close();
    return reply;
  }

  /** The peer's swarm table (signed records, to be verified by the caller's table). */
  async pullTable(model?: string, signal?: AbortSignal): Promise<SignedRecordWire[]> {
    const channel = await this.#channel(TABLE, signal);
    const reply = await exchange(
      channel,
      model === undefined ? { type: "table_request" } : { type: "table_request", model },
      "table",
      this.#timeouts.openMs,
      signal,
    );
    await channel.close();
    return reply.records;
  }

  /** Pushes one signed record (dissemination); resolves once written. */
  async pushRecord(record: SignedRecordWire, signal?: AbortSignal): Promise<void> {
    const channel = await this.#channel(RECORD, signal);
    const t = timeoutSignal(this.#timeouts.openMs, signal);
    try {
      await channel.write({ type: "record", record }, { signal: t.signal });
      await channel.close();
    } catch (err) {
      channel.abort();
      throw err;
    } finally {
      t.clear();
    }
  }
}
