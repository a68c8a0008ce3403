/**
 * The messages of the Plumise gateway's agent relay (`ws(s)://<gateway>/ws/agent-relay`;
 * docs/protocol.md, "Gateway relay"), as the gateway sends and expects them:
 *
 *   node → gateway, within 10 s of connecting:
 *     {"type":"auth","address","model","timestamp","signature"}   timestamp: unix seconds;
 *       signature: EIP-191 over JSON.stringify({address, model, timestamp}) (clock drift ≤ 300 s)
 *   gateway → node: {"type":"auth_ok"} | {"type":"auth_error","message"}, closing with
 *     4001 (auth timeout), 4002 (expected auth), 4003 (missing fields), 4004 (timestamp drift),
 *     4005 (invalid signature); 4010 when another connection of the same address replaced this one
 *   gateway → node: {"type":"request","id","messages":[{role,content}],"maxTokens","temperature",
 *     "topP","stream"}
 *   node → gateway: {"type":"response","id","choices":[{"message":{"content"}}],"usage":{…}}, or
 *     streaming {"type":"chunk","id","content"} … {"type":"done","id","usage"?};
 *     {"type":"error","id","message"}
 *   either way: {"type":"ping"} → {"type":"pong"}
 * @module
 */

/** Close codes the gateway uses, and what they mean. */
export const RELAY_CLOSE_CODES: Readonly<Record<number, string>> = Object.freeze({
  4001: "authentication timed out",
  4002: "the first message was not auth",
  4003: "auth fields missing",
  4004: "timestamp too far from the gateway's clock",
  4005: "invalid signature",
  4010: "replaced by a newer connection of the same address",
});

/** The exact string the auth signature covers. */
export function relayAuthMessage(address: string, model: string, timestamp: number): string {
  return JSON.stringify({ address, model, timestamp });
}

export interface RelayChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface RelayRequest {
  readonly type: "request";
  readonly id: string;
  readonly messages: readonly RelayChatMessage[];
  readonly maxTokens?: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly stream: boolean;
}

export type RelayIncoming =
  | RelayRequest
  | { readonly type: "auth_ok" }
  | { readonly type: "auth_error"; readonly message: string }
  | { readonly type: "ping" }
  | { readonly type: "pong" };

/** A message the node cannot use; `id` when it named a request (to answer it with an error). */
export class RelayMessageError extends Error {
  constructor(message: string, readonly id?: string) {
    super(message);
  }
}

/** Largest message accepted from the gateway (characters). */
export const MAX_RELAY_MESSAGE = 1 << 20;
const MAX_MESSAGES = 512;

/** Parses and checks one message from the gateway; throws `RelayMessageError` (with the request id, if any). */
export function parseRelayMessage(text: string): RelayIncoming {
  if (text.length > MAX_RELAY_MESSAGE) {
    throw new RelayMessageError(
      `message of ${text.length} characters is over the ${MAX_RELAY_MESSAGE} limit`,
    );
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new RelayMessageError(`not JSON: ${JSON.stringify(text.slice(0, 60))}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new RelayMessageError("not a JSON object");
  }
  const o = v as Record<string, unknown>;
  switch (o.type) {
    case "auth_ok":
    case "ping":
    case "pong":
      return { type: o.type };
    case "auth_error":
      return { type: "auth_error", message: typeof o.message === "string" ? o.message.slice(0, 500) : "" };
    case "request":
      return parseRequest(o);
    default:
      throw new RelayMessageError(`unknown message type ${JSON.stringify(o.type)}`);
  }
}

function parseRequest(o: Record<string, unknown>): RelayRequest {
  if (typeof o.id !== "string" || o.id.length === 0 || o.id.length > 128) {
    throw new RelayMessageError(
      `request id must be a string of 1–128 characters, got ${JSON.stringify(o.id)}`,
    );
  }
  const id = o.id;
  const bad = (what: string, value: unknown) =>
    new RelayMessageError(`request ${id}: ${what}, got ${JSON.stringify(value)?.slice(0, 80)}`, id);
  if (!Array.isArray(o.messages) || o.messages.length === 0 || o.messages.length > MAX_MESSAGES) {
    throw bad(`messages must be an array of 1–${MAX_MESSAGES} {role, content}`, o.messages);
  }
  const messages = o.messages.map((m) => {
    const r = m as Record<string, unknown> | null;
    if (typeof r !== "object" || r === null || typeof r.role !== "string" || typeof r.content !== "string") {
      throw bad("each message must be {role: string, content: string}", m);
    }
    return { role: r.role, content: r.content };
  });
  const num = (key: string, min: number, max: number, integer = false): number | undefined => {
    const x = o[key];
    if (x === undefined || x === null) return undefined;
    if (
      typeof x !== "number" || !Number.isFinite(x) || x < min || x > max || (integer && !Number.isInteger(x))
    ) {
      throw bad(`${key} must be ${integer ? "an integer" : "a number"} in [${min}, ${max}]`, x);
    }
    return x;
  };
  if (o.stream !== undefined && typeof o.stream !== "boolean") {
    throw bad("stream must be true or false", o.stream);
  }
  return {
    type: "request",
    id,
    messages,
    maxTokens: num("maxTokens", 1, 1_000_000, true),
    temperature: num("temperature", 0, 2),
    topP: num("topP", 0, 1),
    stream: o.stream === true,
  };
}
