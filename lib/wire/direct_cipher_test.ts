import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher, randomSecret } from "./direct_cipher.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function key(seed = 1): Uint8Array {
  const k = new Uint8Array(32);
  for (let i = 0; i < 32; i++) k[i] = (i * 31 + seed * 17) & 0xff;
  return k;
}

/** A client and a server cipher under the same key. */
function pair(k = key()): { client: DirectCipher; server: DirectCipher } {
  return { client: new DirectCipher(k, "client"), server: new DirectCipher(k, "server") };
}

/** Asserts that `fn` throws a BAD_FRAME WireError whose message matches `re`, with a hint. */
function badFrame(fn: () => unknown, re: RegExp, frame?: number): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof WireError, `expected WireError, got ${err}`);
    assert.equal(err.code, "BAD_FRAME");
    assert.match(err.message, re);
    assert.ok(err.hint.length > 0, "hint");
    if (frame !== undefined) assert.equal(err.details.frame, frame);
    return true;
  });
}

Deno.test("direct cipher: frames round-trip in order, client → server and server → client", () => {
  const { client, server } = pair();
  const up = ["step 0", "step 1", "x".repeat(70_000), "step 3"];
  const down = ["proof", "result 0", "result 1"];
  const sealedUp = up.map((s) => client.seal(enc.encode(s)));
  const sealedDown = down.map((s) => server.seal(enc.encode(s)));
  for (const [i, s] of sealedUp.entries()) {
    assert.equal(s.byteLength, enc.encode(up[i]).byteLength + DIRECT_SEAL_OVERHEAD);
    assert.equal(dec.decode(server.open(s)), up[i]);
  }
  for (const [i, s] of sealedDown.entries()) assert.equal(dec.decode(client.open(s)), down[i]);
  // interleaved traffic keeps both counters independent
  assert.equal(dec.decode(server.open(client.seal(enc.encode("a")))), "a");
  assert.equal(dec.decode(client.open(server.seal(enc.encode("b")))), "b");
});

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

Deno.test("direct cipher: known-answer frames (ChaCha20-Poly1305, nonce = direction tag ‖ LE counter) stay byte-identical", () => {
  // computed with an independent implementation (@noble/ciphers 2.4.0, the one earlier builds used),
  // so peers of either build read each other's frames
  const k = Uint8Array.from({ length: 32 }, (_, i) => i);
  const client = new DirectCipher(k, "client");
  assert.equal(
    hex(client.seal(enc.encode("plumise direct frame"))),
    "c19d30fc2ffab918361ae50e659b9fb95bac6c8e6ee6810656176659efd54f27670002fa",
  );
  assert.equal(hex(client.seal(new Uint8Array(0))), "a50da51319056d84e76ca44d17f2c756");
  const server = new DirectCipher(k, "server");
  assert.equal(
    dec.decode(server.open(Uint8Array.from(
      "c19d30fc2ffab918361ae50e659b9fb95bac6c8e6ee6810656176659efd54f27670002fa".match(/../g)!,
      (h) => parseInt(h, 16),
    ))),
    "plumise direct frame",
  );
});

Deno.test("direct cipher: sealInto leaves the headroom free and seals the same bytes as seal", () => {
  const a = new DirectCipher(key(3), "server"), b = new DirectCipher(key(3), "server");
  const plain = enc.encode("result frame");
  const sealed = a.seal(plain);
  const into = b.sealInto(plain, 3);
  assert.equal(into.byteLength, 3 + sealed.byteLength);
  assert.deepEqual([...into.subarray(0, 3)], [0, 0, 0]);
  assert.deepEqual(into.subarray(3), sealed);
});

Deno.test("direct cipher: the same plaintext seals differently per frame and per direction", () => {
  const { client, server } = pair();
  const p = enc.encode("same bytes every time");
  const c0 = client.seal(p);
  const c1 = client.seal(p);
  const s0 = server.seal(p);
  assert.notDeepEqual(c0, c1, "the counter changes the nonce");
  assert.notDeepEqual(c0, s0, "the direction changes the nonce");
  // the ciphertext does not contain the plaintext
  assert.ok(!dec.decode(c0).includes("same bytes"));
});

Deno.test("direct cipher: empty plaintext seals to a bare tag and opens to empty", () => {
  const { client, server } = pair();
  const s = server.seal(new Uint8Array(0));
  assert.equal(s.byteLength, DIRECT_SEAL_OVERHEAD);
  const back = client.open(s);
  assert.ok(back instanceof Uint8Array);
  assert.equal(back.byteLength, 0);
  // the counter advanced: the next frame still opens
  assert.equal(dec.decode(client.open(server.seal(enc.encode("next")))), "next");
});

Deno.test("direct cipher: a flipped byte in ciphertext or tag fails with BAD_FRAME naming the frame", () => {
  const { client, server } = pair();
  const frames = [0, 1, 2].map((i) => client.seal(enc.encode(`frame ${i} payload`)));
  server.open(frames[0]);
  server.open(frames[1]);
  const body = frames[2].slice();
  body[3] ^= 0x01; // inside the ciphertext
  badFrame(() => server.open(body), /direct frame 2 failed authentication/, 2);
  const tag = frames[2].slice();
  tag[tag.byteLength - 1] ^= 0x80; // inside the tag
  badFrame(() => server.open(tag), /direct frame 2 failed authentication/, 2);
  const truncated = frames[2].subarray(0, frames[2].byteLength - 1);
  badFrame(() => server.open(truncated), /direct frame 2 failed authentication/, 2);
  // a failed frame does not advance the counter: the genuine frame 2 still opens
  assert.equal(dec.decode(server.open(frames[2])), "frame 2 payload");
});

Deno.test("direct cipher: a frame shorter than its tag is BAD_FRAME naming its size", () => {
  const { server } = pair();
  badFrame(() => server.open(new Uint8Array(15)), /direct frame of 15 bytes is shorter than its tag/);
  badFrame(() => server.open(new Uint8Array(0)), /direct frame of 0 bytes/);
});

Deno.test("direct cipher: replayed, dropped and reordered frames fail", () => {
  {
    const { client, server } = pair();
    const f0 = client.seal(enc.encode("zero"));
    client.seal(enc.encode("one"));
    server.open(f0);
    badFrame(() => server.open(f0), /direct frame 1 failed authentication/, 1); // replay
  }
  {
    const { client, server } = pair();
    client.seal(enc.encode("zero")); // dropped on the way
    const f1 = client.seal(enc.encode("one"));
    badFrame(() => server.open(f1), /direct frame 0 failed authentication/, 0);
  }
  {
    const { client, server } = pair();
    const f0 = client.seal(enc.encode("zero"));
    const f1 = client.seal(enc.encode("one"));
    badFrame(() => server.open(f1), /direct frame 0 failed authentication/, 0); // reordered
    assert.equal(dec.decode(server.open(f0)), "zero");
    assert.equal(dec.decode(server.open(f1)), "one");
  }
});

Deno.test("direct cipher: a reflected frame (opened with the sender's own role) fails", () => {
  const k = key();
  const client = new DirectCipher(k, "client");
  const server = new DirectCipher(k, "server");
  const up = client.seal(enc.encode("to the server"));
  const down = server.seal(enc.encode("to the client"));
  badFrame(() => new DirectCipher(k, "client").open(up), /direct frame 0 failed/, 0);
  badFrame(() => new DirectCipher(k, "server").open(down), /direct frame 0 failed/, 0);
  // a client's own frame sent back to it fails too
  badFrame(() => client.open(up), /direct frame 0 failed/, 0);
});

Deno.test("direct cipher: a frame sealed under another key fails", () => {
  const a = new DirectCipher(key(1), "client");
  const b = new DirectCipher(key(2), "server");
  badFrame(() => b.open(a.seal(enc.encode("hello"))), /direct frame 0 failed authentication/, 0);
  // the same empty proof frame under another key fails as well
  badFrame(
    () => new DirectCipher(key(2), "client").open(new DirectCipher(key(1), "server").seal(new Uint8Array(0))),
    /direct frame 0 failed/,
    0,
  );
});

Deno.test("direct cipher: a key that is not 32 bytes is a RangeError naming its length", () => {
  assert.throws(() => new DirectCipher(new Uint8Array(16), "client"), {
    name: "RangeError",
    message: /32 bytes, got 16/,
  });
  assert.throws(() => new DirectCipher(new Uint8Array(33), "server"), {
    name: "RangeError",
    message: /got 33/,
  });
});

Deno.test("randomSecret: 43 base64url characters that decode to 32 bytes, fresh each call", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 16; i++) {
    const s = randomSecret();
    assert.equal(s.length, 43);
    assert.match(s, /^[A-Za-z0-9_-]{43}$/);
    const b = decodeSecret(s, "secret");
    assert.equal(b.byteLength, 32);
    seen.add(s);
  }
  assert.equal(seen.size, 16);
});

Deno.test("decodeSecret: round-trips a canonical secret byte for byte", () => {
  const bytes = new Uint8Array(32).map((_, i) => 255 - i * 7);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  const s = btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  assert.deepEqual(decodeSecret(s, "direct.key"), bytes);
});

Deno.test("decodeSecret: wrong lengths and non-canonical base64url are BAD_FRAME naming the field", () => {
  const good = randomSecret();
  const cases: [string, number][] = [
    ["", 0],
    [good.slice(0, 42), 42], // 31 bytes
    [good + "A", 44], // 33 bytes
    [good + good, 86], // 64 bytes
    [good + "=", 44], // padding is not canonical
    ["A".repeat(42) + "B", 43], // low bits set in the last character
    ["+".repeat(43).replace(/.$/, "A"), 43], // standard base64 alphabet, not base64url
    ["/" + good.slice(1), 43],
    ["A".repeat(42) + "!", 43], // not base64 at all
  ];
  for (const [s, n] of cases) {
    assert.throws(() => decodeSecret(s, "direct.ticket"), (err: unknown) => {
      assert.ok(err instanceof WireError, `${JSON.stringify(s)}: expected WireError, got ${err}`);
      assert.equal(err.code, "BAD_FRAME");
      assert.match(err.message, /^direct\.ticket must be 32 bytes of base64url/);
      assert.match(err.message, new RegExp(`got ${n} characters`));
      assert.ok(err.hint.length > 0);
      return true;
    }, JSON.stringify(s));
  }
});
