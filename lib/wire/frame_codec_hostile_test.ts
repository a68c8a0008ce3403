/**
 * Hostile frames cost milliseconds: the work a frame can make the decoder do is bounded before
 * JSON.parse runs (nesting depth, number of values), and an error never turns the whole bad value
 * back into text. Measured here by counting work (characters handed to JSON.parse and produced by
 * JSON.stringify), never by wall-clock time; `deno task bench hostile` reports the times.
 */
import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { decodeFrame, encodeFrame, FRAME_VERSION } from "./frame_codec.ts";
import { MAX_TABLE_RECORDS } from "./protocol_messages.ts";
import { DEFAULT_WIRE_LIMITS } from "./wire_limits.ts";

const MiB = 1024 * 1024;

function frame(header: string): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(5 + h.byteLength);
  out[0] = FRAME_VERSION;
  new DataView(out.buffer).setUint32(1, h.byteLength, true);
  out.set(h, 5);
  return out;
}

/** Headers an attacker can send, each close to the 4 MiB header cap. */
function hostileHeaders(): Array<[string, string]> {
  const n = 2 * MiB - 64;
  const commas = (item: string, bytes: number) =>
    new Array(Math.floor(bytes / (item.length + 1))).fill(item).join(",");
  return [
    ["nested arrays at the top", "[".repeat(n) + "]".repeat(n)],
    ["nested arrays in a field", `{"type":"step","x":${"[".repeat(n - 20)}${"]".repeat(n - 20)}}`],
    [
      "nested objects in a field",
      `{"type":"info","live":${'{"a":'.repeat(n / 5 - 8)}1${"}".repeat(n / 5 - 8)}}`,
    ],
    ["a wide array of empty arrays", `{"type":"table","records":[${commas("[]", 4 * MiB - 64)}]}`],
    ["a wide array of numbers", `{"type":"step","hypoIds":[${commas("0", 4 * MiB - 64)}]}`],
    [
      "a huge tensor shape",
      `{"type":"step","stepId":0,"tensors":[{"name":"hidden","dtype":"f32","shape":[${
        commas("1", 4 * MiB - 128)
      }]}]}`,
    ],
    ["a wide object", `{"type":"open",${Array.from({ length: 300_000 }, (_, i) => `"k${i}":0`).join(",")}}`],
    [
      "a long string where an object belongs",
      `{"type":"info","record":"${"x".repeat(4 * MiB - 64)}","live":{}}`,
    ],
  ];
}

/** Runs `fn` counting the characters JSON.parse reads and JSON.stringify writes. */
function counting<T>(fn: () => T): { result: T | unknown; parsed: number; stringified: number } {
  const { parse, stringify } = JSON;
  let parsed = 0, stringified = 0;
  JSON.parse = ((text: string, reviver?: Parameters<typeof parse>[1]) => {
    parsed += text.length;
    return parse(text, reviver);
  }) as typeof JSON.parse;
  JSON.stringify = ((...args: Parameters<typeof stringify>) => {
    const s = stringify(...args);
    stringified += s?.length ?? 0;
    return s;
  }) as typeof JSON.stringify;
  try {
    let result: T | unknown;
    try {
      result = fn();
    } catch (err) {
      result = err;
    }
    return { result, parsed, stringified };
  } finally {
    JSON.parse = parse;
    JSON.stringify = stringify;
  }
}

Deno.test("hostile frames: deep or wide headers are refused before JSON.parse, and the error stays short", () => {
  for (const [what, header] of hostileHeaders()) {
    assert.ok(header.length <= DEFAULT_WIRE_LIMITS.maxHeaderBytes, `${what} fits the header cap`);
    const { result, parsed, stringified } = counting(() => decodeFrame(frame(header)));
    assert.ok(result instanceof WireError, `${what}: a WireError, got ${result}`);
    assert.equal(result.code, "BAD_FRAME", what);
    assert.ok(result.message.length <= 400, `${what}: a short message (${result.message.length} characters)`);
    assert.ok(stringified <= 1000, `${what}: ${stringified} characters stringified for the error`);
    if (!what.includes("string")) {
      assert.equal(parsed, 0, `${what}: ${parsed} characters handed to JSON.parse`);
    }
  }
});

Deno.test("hostile frames: a bad value deep inside a valid header is shown in a bounded preview", () => {
  // valid structure, bad types: each field's preview stays short whatever the value's size
  const deep = JSON.stringify({ type: "open", start: new Array(2000).fill("y".repeat(500)) });
  const wide = JSON.stringify({ type: "table", records: new Array(MAX_TABLE_RECORDS + 1).fill({ a: 1 }) });
  for (const header of [deep, wide]) {
    const { result, stringified } = counting(() => decodeFrame(frame(header)));
    assert.ok(result instanceof WireError && result.code === "BAD_FRAME", `${result}`);
    assert.ok(result.message.length <= 400, result.message);
    assert.ok(stringified <= 1000, `${stringified} characters stringified`);
  }
});

Deno.test("hostile frames: legitimate big headers still decode (a full table of records)", () => {
  const rec = { payload: JSON.stringify({ peerId: "x", pad: "p".repeat(700) }), signature: "A".repeat(88) };
  const body = encodeFrame({ type: "table", records: new Array(MAX_TABLE_RECORDS).fill(rec) });
  const m = decodeFrame(body);
  assert.equal(m.type, "table");
  assert.equal(m.type === "table" && m.records.length, MAX_TABLE_RECORDS);
});
