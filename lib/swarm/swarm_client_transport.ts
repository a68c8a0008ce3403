/**
 * The thin protocol client: open an inference stream (open → opened; the stream itself,
 * step → result and close, is inference_stream.ts), send a forward request, fetch a server's info,
 * pull a table. The mirror of the server handlers; routing, multi-server sessions and failover
 * live in lib/swarm/client/.
 *
 * Every call takes an AbortSignal and has a default timeout. A server's error frame becomes a
 * `SwarmError` whose `code` is the protocol code (`CACHE_FULL`, `SPAN_NOT_SERVED`, ...).
 * @module
 */
import type { HiddenStates } from "../runtime/types.ts";
import { type AbortOptions, timeoutSignal } from "../util/abort.ts";
import {
  connectDirect,
  type InfoMessage,
  type OpenMessage,
  type SignedRecordWire,
  tensor,
  type WireDType,
  type WireLimits,
  type WireMessage,
} from "../wire/mod.ts";
import type { FrameChannel } from "./frame_channel.ts";
import { type DirectPaths, withControl } from "./direct_paths.ts";
import { clientPunch, type PunchDeps } from "./punch_session.ts";
import {
  FORWARD_PROTOCOL as FORWARD,
  INFERENCE_PROTOCOL as INFERENCE,
  INFO_PROTOCOL as INFO,
} from "./protocol_ids.ts";
import { RECORD_PROTOCOL as RECORD, TABLE_PROTOCOL as TABLE } from "./protocol_ids.ts";

import { InferenceStream, type StepResult } from "./inference_stream.ts";
import { type ClientTimeouts, clientTimeouts, exchange, type OpenChannel } from "./protocol_exchange.ts";

export type { ClientTimeouts, OpenChannel } from "./protocol_exchange.ts";
export { remoteError } from "./protocol_exchange.ts";
export {
  type InferenceStepOptions,
  InferenceStream,
  type LinkTicket,
  type PushReply,
  type ReceiveOptions,
  type SessionPath,
  type StepResult,
} from "./inference_stream.ts";

/** The fields of the `open` message; `dtype` (of hidden states both ways) defaults to f32. */
export type OpenInferenceRequest = Omit<OpenMessage, "type" | "dtype"> & { dtype?: WireDType };

export interface ProtocolClientOptions {
  /** Use the direct paths servers offer for inference sessions (off when absent). */
  directPaths?: DirectPaths;
  limits?: WireLimits;
  /** Punch a hole to servers reached through a relay that offer it (off when absent). */
  punch?: PunchDeps;
}

/** The protocol client over some way to open channels to ONE server. */
export class ProtocolClient {
  readonly #open: OpenChannel;
  readonly #timeouts: Required<ClientTimeouts>;
  readonly #o: ProtocolClientOptions;

  constructor(open: OpenChannel, timeouts: ClientTimeouts = {}, options: ProtocolClientOptions = {}) {
    this.#open = open;
    this.#timeouts = clientTimeouts(timeouts);
    this.#o = options;
  }

  async #channel(protocol: string, { signal }: AbortOptions = {}): Promise<FrameChannel> {
    const t = timeoutSignal(this.#timeouts.openMs, signal);
    try {
      return await this.#open(protocol, { signal: t.signal });
    } finally {
      t.clear();
    }
  }

  /** Opens an inference session; rejects with the server's code (e.g. CACHE_FULL) at once. */
  async openInference(
    request: OpenInferenceRequest,
    { signal }: AbortOptions = {},
  ): Promise<InferenceStream> {
    const dtype = request.dtype ?? "f32";
    const channel = await this.#channel(INFERENCE, { signal });
    const opened = await exchange(
      channel,
      { type: "open", ...request, dtype },
      "opened",
      this.#timeouts.openMs,
      { signal },
    );
    const direct = await this.#direct(channel, opened, { signal });
    let punched: FrameChannel | undefined;
    if (!direct && opened.punch && channel.relayed && this.#o.punch) {
      try {
        punched = await clientPunch(channel, this.#o.punch, { limits: this.#o.limits, signal });
      } catch (err) {
        channel.abort(err instanceof Error ? err : undefined);
        throw err;
      }
    }
    return new InferenceStream(
      direct ?? punched ?? channel,
      dtype,
      opened.cacheTokensLeft,
      this.#timeouts,
      direct ? channel.remoteHost : undefined,
      this.#o.directPaths?.plainLoopback ?? true,
      direct ? "direct" : punched ? "punched" : channel.relayed ? "relayed" : "stream",
    );
  }

  /** The session's step channel on its direct path, when offered and reachable (else the stream is). */
  async #direct(
    channel: FrameChannel,
    opened: Extract<WireMessage, { type: "opened" }>,
    { signal }: AbortOptions = {},
  ): Promise<FrameChannel | undefined> {
    const paths = this.#o.directPaths, offer = opened.direct, host = channel.remoteHost;
    if (!paths || !offer || !host || !paths.shouldTry(host, offer.port)) return undefined;
    try {
      const direct = await connectDirect(host, offer, {
        signal,
        limits: this.#o.limits,
        plain: paths.plainLoopback,
      });
      return withControl(direct, channel);
    } catch (err) {
      if (signal?.aborted) {
        channel.abort();
        throw err;
      }
      paths.failed(host, offer.port);
      return undefined;
    }
  }

  /** Cache-less forward through `[start, end)`. */
  async forward(
    request: { model: string; start: number; end: number; hidden: HiddenStates; dtype?: WireDType },
    { signal }: AbortOptions = {},
  ): Promise<StepResult> {
    const channel = await this.#channel(FORWARD, { signal });
    const reply = await exchange(
      channel,
      {
        type: "forward",
        model: request.model,
        start: request.start,
        end: request.end,
        hidden: tensor(request.hidden.data, request.hidden.shape, request.dtype ?? "f32"),
        // how long we wait: the server drops the request unrun once that passed in its queue
        timeoutMs: this.#timeouts.forwardMs,
      },
      "forward_result",
      this.#timeouts.forwardMs,
      { signal },
    );
    await channel.close();
    const [b, t, h] = reply.hidden.shape;
    return { hidden: { data: reply.hidden.data, shape: [b, t, h] }, computeMs: reply.computeMs };
  }

  /** The server's signed record and live figures (the record is NOT verified here). */
  async info({ signal }: AbortOptions = {}): Promise<InfoMessage> {
    const channel = await this.#channel(INFO, { signal });
    const reply = await exchange(channel, { type: "info_request" }, "info", this.#timeouts.openMs, {
      signal,
    });
    await channel.close();
    return reply;
  }

  /** The peer's swarm table (signed records, to be verified by the caller's table). */
  async pullTable(model?: string, { signal }: AbortOptions = {}): Promise<SignedRecordWire[]> {
    const channel = await this.#channel(TABLE, { signal });
    const reply = await exchange(
      channel,
      model === undefined ? { type: "table_request" } : { type: "table_request", model },
      "table",
      this.#timeouts.openMs,
      { signal },
    );
    await channel.close();
    return reply.records;
  }

  /** Pushes one signed record (dissemination); resolves once written. */
  async pushRecord(record: SignedRecordWire, { signal }: AbortOptions = {}): Promise<void> {
    const channel = await this.#channel(RECORD, { signal });
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
