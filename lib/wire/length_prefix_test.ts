import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { encodeVarint, lengthPrefixed, LengthPrefixedDecoder, varintLength } from "./length_prefix.ts";

Deno.test("varint: known encodings", () => {
  assert.deepEqual(encodeVarint(0), new Uint8Array([0]));
  assert.deepEqual(encodeVarint(127), new Uint8Array([127]));
  assert.deepEqual(encodeVarint(300), new Uint8Array([0xac, 0x02]));
  assert.equal(varintLength(64 * 1024 * 1024), 4);
  assert.throws(() => encodeVarint(-1), RangeError);
});

Deno.test("length-prefixed decoder: splits frames across arbitrary chunking", () => {
  const frames = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(7)];
  const stream = new Uint8Array(frames.reduce((n, f) => n + lengthPrefixed(f).byteLength, 0));
  let off = 0;
  for (const f of frames) {
    const lp = lengthPrefixed(f);
    stream.set(lp, off);
    off += lp.byteLength;
  }
  for (const chunk of [1, 2, 5, 1000]) {
    const dec = new LengthPrefixedDecoder(1024);
    const got: Uint8Array[] = [];
    for (let i = 0; i < stream.byteLength; i += chunk) got.push(...dec.push(stream.subarray(i, i + chunk)));
    assert.deepEqual(got, frames);
    assert.equal(dec.buffered, 0);
  }
});

Deno.test("length-prefixed decoder: a declared length above the cap fails before buffering the body", () => {
  const dec = new LengthPrefixedDecoder(1024);
  assert.throws(
    () => dec.push(encodeVarint(1025)),
    (e: unknown) => e instanceof WireError && e.code === "TOO_LARGE",
  );
  const dec2 = new LengthPrefixedDecoder(1024);
  assert.throws(
    () => dec2.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff])),
    (e: unknown) => e instanceof WireError && e.code === "TOO_LARGE",
  );
});

Deno.test("length-prefixed decoder: pushOne returns the first frame only; drain hands over the rest", () => {
  const dec = new LengthPrefixedDecoder(16);
  assert.equal(dec.pushOne(new Uint8Array([3, 1])), undefined, "incomplete");
  const rest = [...lengthPrefixed(new Uint8Array([9, 9])), 5];
  assert.deepEqual([...dec.pushOne(new Uint8Array([2, 3, ...rest]))!], [1, 2, 3]);
  assert.equal(dec.buffered, rest.length);
  assert.deepEqual([...dec.drain()], rest, "the next frame and a byte of the one after, untouched");
  assert.equal(dec.buffered, 0);
  assert.deepEqual(dec.drain().byteLength, 0);
  assert.throws(
    () => new LengthPrefixedDecoder(16).pushOne(encodeVarint(17)),
    (e: unknown) => e instanceof WireError && e.code === "TOO_LARGE",
  );
});

Deno.test("length-prefixed decoder: append then next takes the frames held one by one", () => {
  const dec = new LengthPrefixedDecoder(16);
  dec.append(
    new Uint8Array([...lengthPrefixed(new Uint8Array([1])), ...lengthPrefixed(new Uint8Array([2, 2])), 3]),
  );
  assert.deepEqual([...dec.next()!], [1]);
  assert.deepEqual([...dec.next()!], [2, 2]);
  assert.equal(dec.next(), undefined, "the third frame is incomplete");
  assert.equal(dec.buffered, 1);
});
