import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { readJsonBody } from "./read_json_body.ts";

const post = (body: BodyInit, headers: Record<string, string> = {}) =>
  new Request("http://x/", { method: "POST", body, headers });

Deno.test("readJsonBody parses a JSON object", async () => {
  assert.deepEqual(await readJsonBody(post('{"inputs":"é"}')), { inputs: "é" });
});

Deno.test("readJsonBody refuses a declared Content-Length over the cap without reading the body", async () => {
  let pulls = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      pulls++;
      c.enqueue(new Uint8Array(10));
    },
  });
  const err = await readJsonBody(post(stream, { "content-length": "10485760" }), 1000).catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 413);
  assert.match(err.message, /10485760 bytes \(Content-Length\), the limit is 1000 bytes/);
  assert.ok(pulls <= 1, `pulled ${pulls} chunks`);
});

Deno.test("readJsonBody stops reading a streamed body as soon as it passes the cap", async () => {
  let pulled = 0;
  let cancelled = false;
  const stream = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled += 64 * 1024;
      c.enqueue(new Uint8Array(64 * 1024).fill(32));
      if (pulled >= 10 * 1024 * 1024) c.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  const err = await readJsonBody(post(stream), 256 * 1024).catch((e) => e);
  assert.ok(err instanceof ApiError);
  assert.equal(err.status, 413);
  assert.equal(err.code, "BODY_TOO_LARGE");
  assert.ok(cancelled, "the body stream was cancelled");
  assert.ok(pulled < 1024 * 1024, `read ${pulled} bytes of a 10 MiB body`);
});

Deno.test("readJsonBody: empty, non-JSON, non-object and non-UTF-8 bodies get 400 with a reason", async () => {
  const cases: Array<[BodyInit, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ["{", /not valid JSON/],
    ["[1]", /must be a JSON object, got an array/],
    ["null", /got null/],
    ["42", /got a number/],
    [new Uint8Array([0x7b, 0xff, 0x7d]), /not valid UTF-8/],
  ];
  for (const [body, re] of cases) {
    const err = await readJsonBody(post(body)).catch((e) => e);
    assert.ok(err instanceof ApiError, String(body));
    assert.equal(err.status, 400);
    assert.match(err.message, re);
    assert.ok(err.hint.length > 0);
  }
});
