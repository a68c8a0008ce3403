import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import {
  fromBase64,
  parseRecordPayload,
  recordPayload,
  recordSigningBytes,
  type SwarmRecord,
  toBase64,
  validateRecord,
} from "./swarm_record.ts";

export const sampleRecord: SwarmRecord = {
  peerId: "12D3KooWGzh4pVtHXKSjXMDrdTLdGXZrJRTWrSdgqBcPERcJYbNk",
  addrs: ["/ip4/127.0.0.1/tcp/31330"],
  model: "bigscience/bloom-560m",
  start: 0,
  end: 6,
  state: "online",
  throughput: 123.5,
  inferenceRps: 500,
  forwardRps: 9000,
  networkRps: 1000,
  cacheTokensLeft: 8192,
  weights: "fp32",
  version: "0.1.0",
  wallet: null,
  usingRelay: false,
  nextPings: { "12D3KooWGzh4pVtHXKSjXMDrdTLdGXZrJRTWrSdgqBcPERcJYbNk": 0.5 },
  seq: 1,
  expiresAt: 1_700_000_000_000,
};

Deno.test("record: payload round-trips and signing bytes are domain-separated", () => {
  const p = recordPayload(sampleRecord);
  assert.deepEqual(parseRecordPayload(p), sampleRecord);
  const bytes = new TextDecoder().decode(recordSigningBytes(p));
  assert.ok(bytes.startsWith("plumise-record/1\n"));
  assert.ok(bytes.endsWith(p));
});

Deno.test("record: every field is validated with the offending value", () => {
  const cases: Array<[Partial<Record<keyof SwarmRecord, unknown>>, RegExp]> = [
    [{ peerId: "0OIl" }, /peerId/],
    [{ addrs: ["not-a-multiaddr"] }, /addrs\[0\]/],
    [{ addrs: new Array(33).fill("/ip4/1.2.3.4") }, /addrs/],
    [{ start: -1 }, /start/],
    [{ end: 0 }, /end/],
    [{ state: "dead" }, /state/],
    [{ throughput: -1 }, /throughput/],
    [{ throughput: Infinity }, /throughput/],
    [{ inferenceRps: "1" }, /inferenceRps/],
    [{ cacheTokensLeft: 1.5 }, /cacheTokensLeft/],
    [{ weights: "nf4" }, /weights/],
    [{ wallet: "0xabc" }, /wallet/],
    [{ usingRelay: "no" }, /usingRelay/],
    [{ nextPings: { x: -1 } }, /nextPings/],
    [{ seq: -1 }, /seq/],
    [{ expiresAt: "soon" }, /expiresAt/],
    [{ model: "" }, /model/],
    [{ totalBlocks: 3 }, /totalBlocks/], // below end (6)
    [{ totalBlocks: 2.5 }, /totalBlocks/],
    [{ startedAt: -5 }, /startedAt/],
    [{ movingTo: { start: 4, end: 4 } }, /movingTo\.end/],
    [{ movingTo: "4:8" }, /movingTo/],
  ];
  for (const [patch, re] of cases) {
    assert.throws(() => validateRecord({ ...sampleRecord, ...patch }), (e: unknown) => {
      assert.ok(e instanceof WireError);
      assert.equal(e.code, "BAD_FRAME");
      assert.match(e.message, re);
      return true;
    }, JSON.stringify(patch));
  }
  assert.throws(() => parseRecordPayload("{"), /not valid JSON/);
  assert.throws(() => parseRecordPayload("[]"), /object/);
});

Deno.test("record: optional totalBlocks/startedAt/movingTo survive the payload and are absent when not given", () => {
  const withTotal = {
    ...sampleRecord,
    totalBlocks: 24,
    startedAt: 1_699_999_000_000,
    movingTo: { start: 6, end: 12 },
  };
  assert.deepEqual(parseRecordPayload(recordPayload(withTotal)), withTotal);
  const plain = parseRecordPayload(recordPayload(sampleRecord));
  assert.ok(!("totalBlocks" in plain) && !("startedAt" in plain) && !("movingTo" in plain));
});

Deno.test("record: base64 helpers", () => {
  const b = new Uint8Array([0, 1, 2, 250, 255]);
  assert.deepEqual(fromBase64(toBase64(b)), b);
  assert.throws(() => fromBase64("!!!"), /base64/);
});

Deno.test("record: reachability and relay (NAT) survive the payload, are validated, and are absent when not given", () => {
  const behindNat = {
    ...sampleRecord,
    addrs: [
      "/ip4/198.19.1.2/tcp/31330",
      "/ip4/198.18.0.11/tcp/31330/p2p/12D3KooWGzh4pVtHXKSjXMDrdTLdGXZrJRTWrSdgqBcPERcJYbNk/p2p-circuit",
    ],
    usingRelay: true,
    reachability: "private" as const,
  };
  assert.deepEqual(parseRecordPayload(recordPayload(behindNat)), behindNat);
  const relay = { ...sampleRecord, reachability: "public" as const, relay: true };
  assert.deepEqual(parseRecordPayload(recordPayload(relay)), relay);
  const plain = parseRecordPayload(recordPayload(sampleRecord));
  assert.ok(!("reachability" in plain) && !("relay" in plain));
  assert.throws(() => validateRecord({ ...sampleRecord, reachability: "behind-nat" }), /reachability/);
  assert.throws(() => validateRecord({ ...sampleRecord, relay: "yes" }), /relay/);
});
