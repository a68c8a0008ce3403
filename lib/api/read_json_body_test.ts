import assert from "node:assert/strict";
import { ApiError } from "../errors.ts";
import { readJsonBody } from "./read_json_body.ts";

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
