import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { parseJsonObject, readJsonBody } from "./read_json_body.ts";

const post = (body: BodyInit, headers: Record<string, string> = {}) =>
  new Request("http://x/", { method: "POST", body, headers });

Deno.test("readJsonBody parses a JSON object", async () => {
  assert.deepEqual(await readJsonBody(post('{"inputs":"é"}')), { inputs: "é" });
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

Deno.test("a deeply nested or very wide body is refused by a scan, before JSON.parse builds it", () => {
  const deep = new TextEncoder().encode(`{"inputs":${"[".repeat(200_000)}${"]".repeat(200_000)}}`);
  assert.throws(
    () => parseJsonObject(deep),
    (e) => e instanceof ApiError && e.status === 400 && /nests deeper than 32/.test(e.message),
  );
  const wide = new TextEncoder().encode(`{"inputs":[${new Array(200_000).fill("0").join(",")}]}`);
  assert.throws(() => parseJsonObject(wide), (e) => e instanceof ApiError && e.status === 400);
  // ordinary requests pass
  const chat = {
    messages: Array.from({ length: 500 }, (_, i) => ({ role: "user", content: `m${i}` })),
    max_tokens: 5,
  };
  assert.deepEqual(parseJsonObject(new TextEncoder().encode(JSON.stringify(chat))), chat);
});
