/**
 * The messages of plumise's NAT protocols (docs/protocol.md, "NAT and relays"):
 *
 * reachability (`/plumise/reach/1.0.0`, one request per stream):
 *   reach_request {port?}  → reach {host?, dialed?, reason?}
 *     `host` is the address the asking peer's connection came from, as the answering peer saw it
 *     (its public IP when it sits behind NAT; absent over a relayed connection, which shows no
 *     address); with `port`, the answering peer also dialed
 *     `host:port` back on a fresh connection and says whether that reached the asking peer
 *     (`dialed`), or why it did not try (`reason`).
 * hole punching, on an inference stream that runs through a relay, right after `opened {punch}`:
 *   punch {host, port}   (client: its public host and the local port it will connect from)
 *                        → punch_reply {ok, host?, port?, ticket?, key?, reason?}
 *     With `ok`, both sides connect at once (TCP simultaneous open) from their ports to the
 *     other's host:port; the client then presents `ticket` as on a direct path and the session's
 *     steps use that connection, sealed under `key` (lib/wire/direct_channel.ts).
 * @module
 */
import { bool, int, type Obj, optInt, optStr, str } from "./_validate.ts";

/** A DNS name or an IPv4/IPv6 address (no brackets, no port). */
const HOST = { max: 253, pattern: /^[A-Za-z0-9.:_%-]+$/ };
/** 32 bytes as base64url without padding. */
const SECRET32 = { min: 43, max: 43, pattern: /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/ };
const REASON = { min: 0, max: 500 };

export interface ReachRequestMessage {
  type: "reach_request";
  /** Dial me back at the host you see me at, on this TCP port. */
  port?: number;
}
export interface ReachMessage {
  type: "reach";
  /** The host the request's connection came from (absent: the connection is relayed). */
  host?: string;
  /** Whether the dial-back reached the asking peer (absent: no dial-back was tried). */
  dialed?: boolean;
  /** Why no dial-back was tried, or how it failed. */
  reason?: string;
}
export interface PunchMessage {
  type: "punch";
  host: string;
  port: number;
}
export interface PunchReplyMessage {
  type: "punch_reply";
  ok: boolean;
  host?: string;
  port?: number;
  ticket?: string;
  key?: string;
  reason?: string;
}

export type NatMessage = ReachRequestMessage | ReachMessage | PunchMessage | PunchReplyMessage;
export const NAT_MESSAGE_TYPES: readonly NatMessage["type"][] = [
  "reach_request",
  "reach",
  "punch",
  "punch_reply",
];

/** Validates one of the NAT messages (`o.type` already checked to be one of NAT_MESSAGE_TYPES). */
export function validateNatMessage(o: Obj, type: NatMessage["type"]): NatMessage {
  switch (type) {
    case "reach_request": {
      const port = optInt(o, "port", 1, 65535);
      return port === undefined ? { type } : { type, port };
    }
    case "reach": {
      const m: ReachMessage = { type };
      const host = optStr(o, "host", HOST);
      if (host !== undefined) m.host = host;
      if (o.dialed !== undefined && o.dialed !== null) m.dialed = bool(o, "dialed");
      const reason = optStr(o, "reason", REASON);
      if (reason !== undefined) m.reason = reason;
      return m;
    }
    case "punch":
      return { type, host: str(o, "host", HOST), port: int(o, "port", 1, 65535) };
    case "punch_reply": {
      const ok = bool(o, "ok");
      if (!ok) {
        const reason = optStr(o, "reason", REASON);
        return reason === undefined ? { type, ok } : { type, ok, reason };
      }
      return {
        type,
        ok,
        host: str(o, "host", HOST),
        port: int(o, "port", 1, 65535),
        ticket: str(o, "ticket", SECRET32),
        key: str(o, "key", SECRET32),
      };
    }
  }
}
