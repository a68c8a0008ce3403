import assert from "node:assert/strict";
import {
  MAX_RELAY_MESSAGE,
  parseRelayMessage,
  relayAuthMessage,
  RelayMessageError,
} from "./gateway_relay_messages.ts";

Deno.test("gateway relay messages: the signed auth string is the gateway's JSON.stringify order", () => {
  assert.equal(
    relayAuthMessage("0xAbC", "org/m", 1_800_000_000),
    '{"address":"0xAbC","model":"org/m","timestamp":1800000000}',
  );
});

Deno.test("gateway relay messages: requests, control messages; bad ones name the request when they can", () => {
  const r = parseRelayMessage(JSON.stringify({
    type: "request",
    id: "req-1",
    messages: [{ role: "user", content: "hi" }],
    maxTokens: 64,
    temperature: 0.7,
    topP: 0.9,
    stream: true,
  }));
  assert.deepEqual(r, {
    type: "request",
    id: "req-1",
    messages: [{ role: "user", content: "hi" }],
    maxTokens: 64,
    temperature: 0.7,
    topP: 0.9,
    stream: true,
  });
  assert.deepEqual(parseRelayMessage('{"type":"ping"}'), { type: "ping" });
  assert.deepEqual(parseRelayMessage('{"type":"auth_ok"}'), { type: "auth_ok" });
  assert.deepEqual(parseRelayMessage('{"type":"auth_error","message":"Invalid signature"}'), {
    type: "auth_error",
    message: "Invalid signature",
  });
  const cases: Array<[string, RegExp, string | undefined]> = [
    ["not json", /not JSON/, undefined],
    ["[1]", /not a JSON object/, undefined],
    ['{"type":"surprise"}', /unknown message type/, undefined],
    ['{"type":"request","messages":[]}', /request id/, undefined],
    ['{"type":"request","id":"a","messages":[]}', /messages must be/, "a"],
    ['{"type":"request","id":"b","messages":[{"role":"user"}]}', /\{role: string, content: string\}/, "b"],
    [
      '{"type":"request","id":"c","messages":[{"role":"user","content":"x"}],"maxTokens":0}',
      /maxTokens/,
      "c",
    ],
    [
      '{"type":"request","id":"d","messages":[{"role":"user","content":"x"}],"temperature":3}',
      /temperature/,
      "d",
    ],
    ['{"type":"request","id":"e","messages":[{"role":"user","content":"x"}],"stream":"yes"}', /stream/, "e"],
  ];
  for (const [text, re, id] of cases) {
    assert.throws(
      () => parseRelayMessage(text),
      (e) => e instanceof RelayMessageError && re.test(e.message) && e.id === id,
      text,
    );
  }
  assert.throws(() => parseRelayMessage("x".repeat(MAX_RELAY_MESSAGE + 1)), /over the/);
});
