/**
 * The messages of the swarm protocols (`/plumise/inference/1.0.0`, `/plumise/forward/1.0.0`,
 * `/plumise/info/1.0.0`, `/plumise/table/1.0.0`, record dissemination) and their
 * validation. Each message is one frame (see frame_codec.ts); `type` selects the schema.
 *
 * inference stream (client → server / server → client):
 *   open  {sessionId, model, start, end, maxLength, batch, dtype, wallet?}  → opened | error
 *         (`opened.direct` offers the session's direct path, see DirectOffer)
 *   step  {stepId, hidden[B,T,H], startFromPosition?, hypoIds?, push?}     → result | error
 *   close {}                                                              → (stream ends)
 * links between the servers of a route (direct paths only, see lib/runtime/direct_steps.ts):
 *   link_request {}                          → link_offer {link, port, ticket, key} | linked {ok: false}
 *   link_to {host, port, ticket, key, plain?} → linked {ok, reason?}
 *   (server → client, unasked) link_lost {link}: an input link of the session ended
 *   (server → server, on a link) step {stepId, hidden, trail, push?, startFromPosition?}
 * forward: forward {model, start, end, hidden, timeoutMs?} → forward_result | error
 * info:    info_request {}                     → info {record, live}
 * table:   table_request {model?}              → table {records}
 * dissemination: record {record}
 * NAT (reachability, hole punching; `opened.punch` offers a punch): see nat_messages.ts
 * @module
 */
import type { ProtocolErrorCode } from "./error_codes.ts";
import { type SignedRecordWire, validateSignedRecordWire } from "./swarm_record.ts";
import type { Tensor, WireDType } from "./tensor_codec.ts";
import { WIRE_DTYPES } from "./tensor_codec.ts";
import { MAX_BLOCK } from "./wire_limits.ts";
import { arr, bad, bool, int, num, type Obj, obj, oneOf, optInt, optStr, str } from "./_validate.ts";
import { type NatMessage, validateNatMessage } from "./nat_messages.ts";

/** Largest maxLength (tokens per session) accepted in `open`. */
export const MAX_SESSION_LENGTH = 1_048_576;
/** Largest batch accepted in `open`. */
export const MAX_BATCH = 1024;
const ID = { max: 128, pattern: /^[\x21-\x7e]+$/ };
const MODEL = { max: 256, pattern: /^[^\s\p{Cc}]+$/u };
const WALLET = { max: 42, pattern: /^0x[0-9a-fA-F]{40}$/ };
/** 32 bytes as base64url without padding. */
const SECRET32 = { min: 43, max: 43, pattern: /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/ };
/** A DNS name or an IPv4/IPv6 address (no brackets, no port). */
const HOST = { max: 253, pattern: /^[A-Za-z0-9.:_%-]+$/ };
/** Longest `forward.timeoutMs` accepted (one day). */
export const MAX_FORWARD_TIMEOUT_MS = 86_400_000;
/** Most servers a step's output is pushed through. */
export const MAX_PUSH_HOPS = 256;

export interface OpenMessage {
  type: "open";
  sessionId: string;
  model: string;
  start: number;
  end: number;
  maxLength: number;
  batch: number;
  /** dtype of the hidden states in both directions for this session. */
  dtype: WireDType;
  wallet?: string;
}
export interface OpenedMessage {
  type: "opened";
  sessionId: string;
  start: number;
  end: number;
  /** KV cache tokens this server has left after reserving this session. */
  cacheTokensLeft: number;
  /** The server offers this session's steps over a direct encrypted TCP connection. */
  direct?: DirectOffer;
  /**
   * The session runs through a relay and the server can punch a hole to the client: the client
   * may send `punch` before its first step (see nat_messages.ts).
   */
  punch?: boolean;
}

/**
 * A server's offer of a direct path for one inference session (lib/swarm/direct_channel.ts):
 * the client connects to `port` on the host it reached the server at, presents `ticket`, and
 * from then on sends the session's steps as ChaCha20-Poly1305 frames under `key`. Both secrets travel
 * only inside the authenticated, encrypted libp2p stream; a ticket is single-use and expires.
 */
export interface DirectOffer {
  port: number;
  /** 32 random bytes, base64url without padding (43 characters). */
  ticket: string;
  /** ChaCha20-Poly1305 key, 32 random bytes, base64url without padding (43 characters). */
  key: string;
  /** The server takes a hello with the ticket's hash (`DIRECT_MAGIC_HASHED`); absent: the ticket. */
  hashed?: boolean;
}
export interface StepMessage {
  type: "step";
  /** Increases from step to step of a client's session (the same id on every server of its route). */
  stepId: number;
  hidden: Tensor;
  /** Roll the cache back to this position before running (replay, speculative decoding). */
  startFromPosition?: number;
  /** Reorder the batch of the cache first (beam search): new row i = old row hypoIds[i]. */
  hypoIds?: number[];
  /**
   * How many servers further down the route the output is pushed: the server sends its output as
   * this step (with `push - 1`) over the link the client set up with `link_to`, if it has one,
   * and replies to the client only when it could not.
   */
  push?: number;
  /**
   * Pushed steps only: `hidden` holds `trail` earlier outputs before the input, each `batch` rows
   * (`hidden` is `[batch × (trail + 1), T, H]`): the outputs of the spans this step was pushed
   * through, oldest first, carried to the client in the result that ends the push.
   */
  trail?: number;
}
export interface ResultMessage {
  type: "result";
  stepId: number;
  hidden: Tensor;
  computeMs: number;
  /** This step's input was pushed by the previous server, not sent by the client. */
  pushed?: boolean;
  /**
   * `hidden` holds `trail` outputs of the earlier spans of the push before this server's output,
   * each `batch` rows (`hidden` is `[batch × (trail + 1), T, H]`), oldest first.
   */
  trail?: number;
}
/** Client → server: a ticket another server can push this session's input with. */
export interface LinkRequestMessage {
  type: "link_request";
}
/** The ticket (the same form as a direct offer): handed by the client to the previous server. */
export interface LinkOfferMessage {
  type: "link_offer";
  /** The input link's number in this session (named again by `link_lost`). */
  link: number;
  port: number;
  ticket: string;
  key: string;
}
/** Client → server: push your outputs to the server that offered this ticket, at `host`. */
export interface LinkToMessage {
  type: "link_to";
  host: string;
  port: number;
  ticket: string;
  key: string;
  /**
   * Whether the link may carry plain frames where both its ends are loopback addresses (absent:
   * yes; the client's `ConnectDirectOptions.plain` for the hop, see lib/wire/direct_channel.ts).
   */
  plain?: boolean;
}
/** Whether a link request or link_to succeeded; `reason` when it did not. */
export interface LinkedMessage {
  type: "linked";
  ok: boolean;
  reason?: string;
}
/** Server → client: one of the session's input links ended (input is then sent by the client). */
export interface LinkLostMessage {
  type: "link_lost";
  /** The `link_offer.link` of the link that ended. */
  link: number;
}
export interface CloseMessage {
  type: "close";
}
export interface ErrorMessage {
  type: "error";
  /** One of PROTOCOL_ERROR_CODES; a newer peer's unknown code is kept as-is (clients raise it as REMOTE_ERROR). */
  code: ProtocolErrorCode | string;
  message: string;
  hint?: string;
  stepId?: number;
}
export interface ForwardMessage {
  type: "forward";
  model: string;
  start: number;
  end: number;
  hidden: Tensor;
  /**
   * How long the requester waits for the reply (ms); a server drops the request, unrun, once
   * that passed while it waited for a slot (servers cap it with their own timeout).
   */
  timeoutMs?: number;
}
export interface ForwardResultMessage {
  type: "forward_result";
  hidden: Tensor;
  computeMs: number;
}
export interface InfoRequestMessage {
  type: "info_request";
}
/** Live figures a server adds to its record in an info reply. */
export interface LiveInfo {
  sessions: number;
  cacheTokensLeft: number;
  uptimeSeconds: number;
  tokensProcessed: number;
  requestCount: number;
}
export interface InfoMessage {
  type: "info";
  record: SignedRecordWire;
  live: LiveInfo;
}
export interface TableRequestMessage {
  type: "table_request";
  model?: string;
}
export interface TableMessage {
  type: "table";
  records: SignedRecordWire[];
}
export interface RecordMessage {
  type: "record";
  record: SignedRecordWire;
}

export type WireMessage =
  | OpenMessage
  | OpenedMessage
  | StepMessage
  | ResultMessage
  | CloseMessage
  | ErrorMessage
  | ForwardMessage
  | ForwardResultMessage
  | InfoRequestMessage
  | InfoMessage
  | TableRequestMessage
  | TableMessage
  | RecordMessage
  | LinkRequestMessage
  | LinkOfferMessage
  | LinkToMessage
  | LinkedMessage
  | LinkLostMessage
  | NatMessage;
export type MessageType = WireMessage["type"];

/** Which tensor fields each message type carries (all required). */
export const TENSOR_FIELDS: Readonly<Record<MessageType, readonly string[]>> = {
  open: [],
  opened: [],
  step: ["hidden"],
  result: ["hidden"],
  close: [],
  error: [],
  forward: ["hidden"],
  forward_result: ["hidden"],
  info_request: [],
  info: [],
  table_request: [],
  table: [],
  record: [],
  link_request: [],
  link_offer: [],
  link_to: [],
  linked: [],
  link_lost: [],
  reach_request: [],
  reach: [],
  punch: [],
  punch_reply: [],
};
export const MESSAGE_TYPES = Object.keys(TENSOR_FIELDS) as MessageType[];

/** Most records a table reply may carry. */
export const MAX_TABLE_RECORDS = 4096;

function hiddenTensor(o: Obj, key: string): Tensor {
  const t = o[key] as Tensor | undefined;
  if (!t || t.shape.length !== 3 || t.shape.some((d) => d < 1)) {
    bad(key, "a tensor of shape [batch, tokens, hidden] with every dimension ≥ 1", t?.shape);
  }
  return t;
}

/** `trail` of a step or result: at most MAX_PUSH_HOPS, and `hidden`'s rows must split into trail + 1 parts. */
function trailOf(o: Obj, hidden: Tensor): number {
  const trail = optInt(o, "trail", 0, MAX_PUSH_HOPS) ?? 0;
  if (hidden.shape[0] % (trail + 1) !== 0) {
    bad(
      "hidden",
      `a tensor whose ${hidden.shape[0]} rows split into trail + 1 = ${trail + 1} equal parts`,
      hidden.shape,
    );
  }
  return trail;
}

/**
 * Validates a decoded header (with its tensors already attached under their names) and
 * returns the typed message. Unknown extra fields are ignored (forward compatible).
 */
export function validateMessage(header: unknown): WireMessage {
  const o = obj(header, "header");
  const type = oneOf(o, "type", MESSAGE_TYPES);
  switch (type) {
    case "open": {
      const start = int(o, "start", 0, MAX_BLOCK - 1);
      const end = int(o, "end", start + 1, MAX_BLOCK);
      const m: OpenMessage = {
        type,
        sessionId: str(o, "sessionId", ID),
        model: str(o, "model", MODEL),
        start,
        end,
        maxLength: int(o, "maxLength", 1, MAX_SESSION_LENGTH),
        batch: int(o, "batch", 1, MAX_BATCH),
        dtype: oneOf(o, "dtype", WIRE_DTYPES),
      };
      const wallet = optStr(o, "wallet", WALLET);
      if (wallet !== undefined) m.wallet = wallet;
      return m;
    }
    case "opened": {
      const start = int(o, "start", 0, MAX_BLOCK - 1);
      const m: OpenedMessage = {
        type,
        sessionId: str(o, "sessionId", ID),
        start,
        end: int(o, "end", start + 1, MAX_BLOCK),
        cacheTokensLeft: int(o, "cacheTokensLeft", 0, Number.MAX_SAFE_INTEGER),
      };
      if (o.direct !== undefined && o.direct !== null) {
        const d = obj(o.direct, "direct");
        m.direct = {
          port: int(d, "port", 1, 65535, "direct."),
          ticket: str(d, "ticket", SECRET32, "direct."),
          key: str(d, "key", SECRET32, "direct."),
        };
        if (d.hashed === true) m.direct.hashed = true;
      }
      if (o.punch !== undefined && o.punch !== null && bool(o, "punch")) m.punch = true;
      return m;
    }
    case "step": {
      const hidden = hiddenTensor(o, "hidden");
      const m: StepMessage = { type, stepId: int(o, "stepId", 0, Number.MAX_SAFE_INTEGER), hidden };
      const sfp = optInt(o, "startFromPosition", 0, MAX_SESSION_LENGTH);
      if (sfp !== undefined) m.startFromPosition = sfp;
      if (o.hypoIds !== undefined && o.hypoIds !== null) {
        const ids = arr(o, "hypoIds", MAX_BATCH);
        const b = hidden.shape[0];
        if (
          ids.length !== b ||
          !ids.every((x) => Number.isSafeInteger(x) && (x as number) >= 0 && (x as number) < b)
        ) {
          bad("hypoIds", `${b} integers in [0, ${b})`, ids);
        }
        m.hypoIds = ids as number[];
      }
      const push = optInt(o, "push", 0, MAX_PUSH_HOPS);
      if (push) m.push = push;
      const trail = trailOf(o, hidden);
      if (trail) m.trail = trail;
      return m;
    }
    case "result": {
      const m: ResultMessage = {
        type,
        stepId: int(o, "stepId", 0, Number.MAX_SAFE_INTEGER),
        hidden: hiddenTensor(o, "hidden"),
        computeMs: num(o, "computeMs", 0),
      };
      if (o.pushed !== undefined && bool(o, "pushed")) m.pushed = true;
      const trail = trailOf(o, m.hidden);
      if (trail) m.trail = trail;
      return m;
    }
    case "link_request":
      return { type };
    case "link_lost":
      return { type, link: int(o, "link", 0, Number.MAX_SAFE_INTEGER) };
    case "link_offer":
      return {
        type,
        link: int(o, "link", 0, Number.MAX_SAFE_INTEGER),
        port: int(o, "port", 1, 65535),
        ticket: str(o, "ticket", SECRET32),
        key: str(o, "key", SECRET32),
      };
    case "link_to": {
      const m: LinkToMessage = {
        type,
        host: str(o, "host", HOST),
        port: int(o, "port", 1, 65535),
        ticket: str(o, "ticket", SECRET32),
        key: str(o, "key", SECRET32),
      };
      if (o.plain !== undefined) m.plain = bool(o, "plain");
      return m;
    }
    case "linked": {
      const m: LinkedMessage = { type, ok: bool(o, "ok") };
      const reason = optStr(o, "reason", { min: 0, max: 2000 });
      if (reason !== undefined) m.reason = reason;
      return m;
    }
    case "close":
      return { type };
    case "error": {
      const code = str(o, "code", { max: 40, pattern: /^[A-Z][A-Z0-9_]*$/ });
      const m: ErrorMessage = { type, code, message: str(o, "message", { min: 0, max: 2000 }) };
      const hint = optStr(o, "hint", { min: 0, max: 2000 });
      if (hint !== undefined) m.hint = hint;
      const stepId = optInt(o, "stepId", 0, Number.MAX_SAFE_INTEGER);
      if (stepId !== undefined) m.stepId = stepId;
      return m;
    }
    case "forward": {
      const start = int(o, "start", 0, MAX_BLOCK - 1);
      const m: ForwardMessage = {
        type,
        model: str(o, "model", MODEL),
        start,
        end: int(o, "end", start + 1, MAX_BLOCK),
        hidden: hiddenTensor(o, "hidden"),
      };
      const timeoutMs = optInt(o, "timeoutMs", 1, MAX_FORWARD_TIMEOUT_MS);
      if (timeoutMs !== undefined) m.timeoutMs = timeoutMs;
      return m;
    }
    case "forward_result":
      return { type, hidden: hiddenTensor(o, "hidden"), computeMs: num(o, "computeMs", 0) };
    case "info_request":
      return { type };
    case "info": {
      const live = obj(o.live, "live");
      return {
        type,
        record: validateSignedRecordWire(o.record, "record"),
        live: {
          sessions: int(live, "sessions", 0, Number.MAX_SAFE_INTEGER, "live."),
          cacheTokensLeft: int(live, "cacheTokensLeft", 0, Number.MAX_SAFE_INTEGER, "live."),
          uptimeSeconds: int(live, "uptimeSeconds", 0, Number.MAX_SAFE_INTEGER, "live."),
          tokensProcessed: int(live, "tokensProcessed", 0, Number.MAX_SAFE_INTEGER, "live."),
          requestCount: int(live, "requestCount", 0, Number.MAX_SAFE_INTEGER, "live."),
        },
      };
    }
    case "table_request": {
      const model = optStr(o, "model", MODEL);
      return model === undefined ? { type } : { type, model };
    }
    case "table":
      return {
        type,
        records: arr(o, "records", MAX_TABLE_RECORDS).map((r, i) =>
          validateSignedRecordWire(r, `records[${i}]`)
        ),
      };
    case "record":
      return { type, record: validateSignedRecordWire(o.record, "record") };
    case "reach_request":
    case "reach":
    case "punch":
    case "punch_reply":
      return validateNatMessage(o, type);
  }
  return bad("type", "a known message type", type);
}

/** Convenience: is `m` a message of `type`? */
export function isMessage<T extends MessageType>(
  m: WireMessage,
  type: T,
): m is Extract<WireMessage, { type: T }> {
  return m.type === type;
}
