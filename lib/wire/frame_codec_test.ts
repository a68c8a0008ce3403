import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { decodeFrame, encodeFrame, FRAME_VERSION } from "./frame_codec.ts";
import type { StepMessage, WireMessage } from "./protocol_messages.ts";
import { roundToF16, tensor } from "./tensor_codec.ts";
import { wireLimits } from "./wire_limits.ts";

function hidden(b: number, t: number, h: number, dtype: "f32" | "f16" = "f32") {
  const data = new Float32Array(b * t * h);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 3.3 + i * 1e-3;
  return tensor(data, [b, t, h], dtype);
}

function raw(header: unknown, payload = new Uint8Array(0), version = FRAME_VERSION): Uint8Array {
  const h = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(5 + h.byteLength + payload.byteLength);
  out[0] = version;
  new DataView(out.buffer).setUint32(1, h.byteLength, true);
  out.set(h, 5);
  out.set(payload, 5 + h.byteLength);
  return out;
}

function rejects(body: Uint8Array, code: string, re?: RegExp, limits = wireLimits()): void {
  assert.throws(() => decodeFrame(body, limits), (err: unknown) => {
    assert.ok(err instanceof WireError, `expected WireError, got ${err}`);
    assert.equal(err.code, code);
    if (re) assert.match(err.message, re);
    assert.ok(err.hint.length > 0);
    return true;
  });
}

Deno.test("frame codec: every message type round-trips", () => {
  const rec = { payload: '{"a":1}', signature: "AAAA" };
  const msgs: WireMessage[] = [
    {
      type: "open",
      sessionId: "s-1",
      model: "org/m",
      start: 2,
      end: 5,
      maxLength: 128,
      batch: 2,
      dtype: "f16",
    },
    {
      type: "open",
      sessionId: "s-2",
      model: "org/m",
      start: 0,
      end: 1,
      maxLength: 1,
      batch: 1,
      dtype: "f32",
      wallet: "0x" + "ab".repeat(20),
    },
    { type: "opened", sessionId: "s-1", start: 2, end: 5, cacheTokensLeft: 99 },
    {
      type: "opened",
      sessionId: "s-1",
      start: 2,
      end: 5,
      cacheTokensLeft: 99,
      direct: { port: 31332, ticket: "A".repeat(42) + "w", key: "_-".repeat(21) + "0" },
    },
    { type: "step", stepId: 0, hidden: hidden(2, 3, 4), startFromPosition: 0, hypoIds: [1, 0] },
    { type: "result", stepId: 7, hidden: hidden(1, 1, 8), computeMs: 1.25 },
    { type: "close" },
    { type: "error", code: "CACHE_FULL", message: "no cache", hint: "go elsewhere", stepId: 3 },
    { type: "forward", model: "org/m", start: 0, end: 24, hidden: hidden(1, 5, 4) },
    { type: "forward", model: "org/m", start: 0, end: 24, hidden: hidden(1, 5, 4), timeoutMs: 30_000 },
    { type: "forward_result", hidden: hidden(1, 5, 4), computeMs: 0 },
    { type: "info_request" },
    {
      type: "info",
      record: rec,
      live: { sessions: 1, cacheTokensLeft: 2, uptimeSeconds: 3, tokensProcessed: 4, requestCount: 5 },
    },
    { type: "table_request" },
    { type: "table_request", model: "org/m" },
    { type: "table", records: [rec, rec] },
    { type: "record", record: rec },
    { type: "step", stepId: 9, hidden: hidden(3, 1, 4), startFromPosition: 5, push: 2, trail: 2 },
    { type: "result", stepId: 9, hidden: hidden(2, 1, 4), computeMs: 2, pushed: true, trail: 1 },
    { type: "link_request" },
    { type: "link_offer", link: 3, port: 4100, ticket: "A".repeat(42) + "w", key: "_-".repeat(21) + "0" },
    {
      type: "link_to",
      host: "10.0.0.7",
      port: 4100,
      ticket: "A".repeat(42) + "w",
      key: "_-".repeat(21) + "0",
    },
    {
      type: "link_to",
      host: "127.0.0.1",
      port: 4100,
      ticket: "A".repeat(42) + "w",
      key: "_-".repeat(21) + "0",
      plain: false,
    },
    { type: "linked", ok: true },
    { type: "linked", ok: false, reason: "no route to host" },
    { type: "link_lost", link: 3 },
  ];
  for (const m of msgs) {
    const back = decodeFrame(encodeFrame(m));
    assert.deepEqual(back, m, m.type);
  }
});

Deno.test("frame codec: f32 exact, f16 rounded to half precision", () => {
  const t = hidden(1, 2, 16);
  const m32 = decodeFrame(encodeFrame({ type: "step", stepId: 1, hidden: t })) as StepMessage;
  assert.deepEqual(m32.hidden.data, t.data);
  const t16 = { ...t, dtype: "f16" as const };
  const m16 = decodeFrame(encodeFrame({ type: "step", stepId: 1, hidden: t16 })) as StepMessage;
  assert.equal(m16.hidden.dtype, "f16");
  assert.deepEqual(m16.hidden.data, roundToF16(t.data));
  const maxErr = Math.max(...t.data.map((x, i) => Math.abs(x - m16.hidden.data[i])));
  assert.ok(maxErr > 0 && maxErr < 4e-3, `f16 error ${maxErr}`);
  // f16 frame payload is half the size
  const b32 = encodeFrame({ type: "step", stepId: 1, hidden: t }).byteLength;
  const b16 = encodeFrame({ type: "step", stepId: 1, hidden: t16 }).byteLength;
  assert.equal(b32 - b16, 2 * 32);
});

Deno.test("frame codec: layout is version byte, u32 LE header length, JSON header, raw LE tensor", () => {
  const data = new Float32Array([1.5, -2]);
  const body = encodeFrame({ type: "result", stepId: 1, hidden: tensor(data, [1, 1, 2]), computeMs: 0 });
  assert.equal(body[0], 1);
  const len = new DataView(body.buffer).getUint32(1, true);
  const header = JSON.parse(new TextDecoder().decode(body.subarray(5, 5 + len)));
  assert.deepEqual(header.tensors, [{ name: "hidden", dtype: "f32", shape: [1, 1, 2] }]);
  assert.equal(header.type, "result");
  const payload = body.subarray(5 + len);
  assert.equal(payload.byteLength, 8);
  const dv = new DataView(payload.buffer, payload.byteOffset);
  assert.equal(dv.getFloat32(0, true), 1.5);
  assert.equal(dv.getFloat32(4, true), -2);
});

Deno.test("frame codec: malformed frames are BAD_FRAME with the offending value", () => {
  const ok = encodeFrame({ type: "step", stepId: 1, hidden: hidden(1, 1, 4) });
  rejects(new Uint8Array(0), "BAD_FRAME", /at least/);
  rejects(ok.subarray(0, ok.byteLength - 1), "BAD_FRAME", /payload/);
  rejects(raw({ type: "close" }, new Uint8Array(0), 9), "BAD_FRAME", /version.*9/);
  rejects(raw("{not json"), "BAD_FRAME", /JSON/);
  rejects(raw(new Uint8Array([0xff, 0xfe]) as unknown as string), "BAD_FRAME");
  rejects(raw("[1,2]"), "BAD_FRAME", /object/);
  rejects(raw({ type: "nope" }), "BAD_FRAME", /nope/);
  rejects(raw({ type: "close" }, new Uint8Array(4)), "BAD_FRAME", /exactly 0/);
  rejects(raw({ type: "step", stepId: 1 }), "BAD_FRAME", /tensor/);
  const desc = (shape: unknown, dtype: unknown = "f32", name: unknown = "hidden") => ({
    type: "step",
    stepId: 1,
    tensors: [{ name, dtype, shape }],
  });
  rejects(raw(desc([1, 1, 4], "bf16"), new Uint8Array(8)), "BAD_FRAME", /bf16/);
  rejects(raw(desc([1, 1, 4], "f32", "other"), new Uint8Array(16)), "BAD_FRAME", /other/);
  rejects(raw(desc([1, 1, 4]), new Uint8Array(15)), "BAD_FRAME");
  rejects(raw(desc([1, 1, 4]), new Uint8Array(17)), "BAD_FRAME", /exactly 16/);
  rejects(raw(desc([1, 4]), new Uint8Array(16)), "BAD_FRAME", /batch, tokens, hidden/);
  rejects(raw(desc([1, 0, 4]), new Uint8Array(0)), "BAD_FRAME", /≥ 1/);
  rejects(raw(desc([1, -1, 4]), new Uint8Array(0)), "BAD_FRAME", /non-negative/);
  rejects(raw(desc([1, 1.5, 4]), new Uint8Array(0)), "BAD_FRAME");
  rejects(raw(desc([2 ** 30, 2 ** 30, 2 ** 30]), new Uint8Array(0)), "BAD_FRAME");
  rejects(raw(desc([1, 2, 3, 4, 5]), new Uint8Array(480)), "BAD_FRAME", /1..4/);
  // hypoIds must be a permutation index per batch row
  const step = (extra: Record<string, unknown>) => raw({ ...desc([2, 1, 1]), ...extra }, new Uint8Array(8));
  rejects(step({ hypoIds: [0, 2] }), "BAD_FRAME", /hypoIds/);
  rejects(step({ hypoIds: [0] }), "BAD_FRAME", /hypoIds/);
  rejects(step({ stepId: -1 }), "BAD_FRAME", /stepId/);
  rejects(step({ startFromPosition: "0" }), "BAD_FRAME", /startFromPosition/);
  // open field checks
  const open = {
    type: "open",
    sessionId: "s",
    model: "m",
    start: 0,
    end: 2,
    maxLength: 4,
    batch: 1,
    dtype: "f32",
  };
  assert.equal(decodeFrame(raw(open)).type, "open");
  rejects(raw({ ...open, end: 0 }), "BAD_FRAME", /end/);
  rejects(raw({ ...open, maxLength: 0 }), "BAD_FRAME", /maxLength/);
  rejects(raw({ ...open, batch: 5000 }), "BAD_FRAME", /batch/);
  rejects(raw({ ...open, dtype: "f64" }), "BAD_FRAME", /dtype/);
  rejects(raw({ ...open, model: "has space" }), "BAD_FRAME", /model/);
  rejects(raw({ ...open, sessionId: "" }), "BAD_FRAME", /sessionId/);
  rejects(raw({ ...open, wallet: "0x12" }), "BAD_FRAME", /wallet/);
  rejects(raw({ type: "error", code: "lower", message: "x" }), "BAD_FRAME", /code/);
  // the direct-path offer in opened: a port and two 32-byte base64url secrets
  const secret = "a".repeat(42) + "A";
  const opened = { type: "opened", sessionId: "s", start: 0, end: 2, cacheTokensLeft: 1 };
  const direct = (d: Record<string, unknown>) =>
    raw({ ...opened, direct: { port: 9, ticket: secret, key: secret, ...d } });
  assert.deepEqual((decodeFrame(direct({})) as { direct?: unknown }).direct, {
    port: 9,
    ticket: secret,
    key: secret,
  });
  rejects(direct({ port: 0 }), "BAD_FRAME", /direct\.port/);
  rejects(direct({ port: 70000 }), "BAD_FRAME", /direct\.port/);
  rejects(direct({ ticket: "short" }), "BAD_FRAME", /direct\.ticket/);
  rejects(direct({ ticket: "a".repeat(42) + "B" }), "BAD_FRAME", /direct\.ticket/); // 33rd byte's bits
  rejects(direct({ key: "a".repeat(42) + "=" }), "BAD_FRAME", /direct\.key/);
  rejects(raw({ ...opened, direct: "yes" }), "BAD_FRAME", /direct/);
  // pushes: the rows of a step's or result's hidden split into trail + 1 parts; hops are bounded
  rejects(raw({ ...desc([2, 1, 1]), trail: 2 }, new Uint8Array(8)), "BAD_FRAME", /trail \+ 1 = 3/);
  rejects(raw({ ...desc([2, 1, 1]), trail: -1 }, new Uint8Array(8)), "BAD_FRAME", /trail/);
  rejects(raw({ ...desc([2, 1, 1]), push: 257 }, new Uint8Array(8)), "BAD_FRAME", /push/);
  rejects(
    raw({ ...desc([2, 1, 1]), type: "result", computeMs: 0, pushed: "yes" }, new Uint8Array(8)),
    "BAD_FRAME",
    /pushed/,
  );
  const linkTo = { type: "link_to", host: "h", port: 9, ticket: secret, key: secret };
  assert.equal(decodeFrame(raw(linkTo)).type, "link_to");
  rejects(raw({ ...linkTo, host: "evil host/x" }), "BAD_FRAME", /host/);
  rejects(raw({ ...linkTo, host: "" }), "BAD_FRAME", /host/);
  rejects(raw({ ...linkTo, port: 0 }), "BAD_FRAME", /port/);
  rejects(raw({ ...linkTo, plain: "no" }), "BAD_FRAME", /plain/);
  rejects(raw({ type: "link_offer", link: -1, port: 9, ticket: secret, key: secret }), "BAD_FRAME", /link/);
  rejects(raw({ type: "link_lost" }), "BAD_FRAME", /link/);
  rejects(raw({ type: "linked" }), "BAD_FRAME", /ok/);
});

Deno.test("frame codec: size caps are enforced before allocation, both ways", () => {
  const limits = wireLimits(4096);
  // declared header longer than the cap
  const body = new Uint8Array(64);
  body[0] = 1;
  new DataView(body.buffer).setUint32(1, 0xffffffff, true);
  rejects(body, "TOO_LARGE", /header of 4294967295 bytes/, limits);
  rejects(new Uint8Array(5000), "TOO_LARGE", /5000/, limits);
  assert.throws(
    () => encodeFrame({ type: "step", stepId: 1, hidden: hidden(1, 1, 2000) }, limits),
    (e: unknown) => e instanceof WireError && e.code === "TOO_LARGE",
  );
});
