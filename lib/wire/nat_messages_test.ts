import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { decodeFrame, encodeFrame } from "./frame_codec.ts";
import type { WireMessage } from "./protocol_messages.ts";
import { validateMessage } from "./protocol_messages.ts";

const SECRET = "A".repeat(42) + "A";
const roundTrip = (m: WireMessage) => decodeFrame(encodeFrame(m));

Deno.test("nat messages: reach_request/reach and punch/punch_reply round-trip through the frame codec", () => {
  for (
    const m of [
      { type: "reach_request" },
      { type: "reach_request", port: 31330 },
      { type: "reach", host: "198.18.0.1", dialed: false, reason: "connection timed out" },
      { type: "reach", reason: "the connection is relayed: no address to see or dial" },
      { type: "punch", host: "198.18.0.2", port: 40001 },
      { type: "punch_reply", ok: true, host: "198.18.0.1", port: 40002, ticket: SECRET, key: SECRET },
      { type: "punch_reply", ok: false, reason: "no public address" },
    ] as WireMessage[]
  ) assert.deepEqual(roundTrip(m), m);
  const opened = {
    type: "opened",
    sessionId: "s",
    start: 0,
    end: 2,
    cacheTokensLeft: 10,
    punch: true,
  } as const;
  assert.deepEqual(roundTrip(opened), opened);
});

Deno.test("nat messages: bad fields are WireErrors naming the field and value", () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ type: "reach_request", port: 0 }, /port/],
    [{ type: "reach_request", port: 70000 }, /port/],
    [{ type: "reach", host: "198.18.0.1:80/x y" }, /host/],
    [{ type: "reach", host: "198.18.0.1", dialed: "yes" }, /dialed/],
    [{ type: "punch", host: "198.18.0.1" }, /port/],
    [{ type: "punch", host: "a b", port: 1 }, /host/],
    [{ type: "punch_reply", ok: true, host: "198.18.0.1", port: 1, ticket: "short", key: SECRET }, /ticket/],
    [{ type: "punch_reply", ok: true, port: 1, ticket: SECRET, key: SECRET }, /host/],
    [{ type: "punch_reply", ok: "no" }, /ok/],
  ];
  for (const [header, field] of bad) {
    assert.throws(
      () => validateMessage(header),
      (e) => e instanceof WireError && field.test(e.message),
      JSON.stringify(header),
    );
  }
});
