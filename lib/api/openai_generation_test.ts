import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator } from "../testing/mod.ts";
import { ApiHandler } from "./api_handler.ts";

const JSON_TYPE = { "content-type": "application/json" };

function setup({ gen = new FakeGenerator() } = {}) {
  const handler = new ApiHandler({ generator: gen, metrics: new Metrics() });
  const call = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (json !== undefined) headers.set("content-type", "application/json");
    const body = json === undefined ? rest.body : JSON.stringify(json);
    return handler.app.request(path, { method: "POST", ...rest, headers, body });
  };
  return { gen, call };
}

async function bodyOf(r: Response): Promise<Record<string, unknown>> {
  return await r.json() as Record<string, unknown>;
}

Deno.test("OpenAI routes: a long prompt is context_length_exceeded; unknown /v1 paths and bad JSON in OpenAI's shape", async () => {
  const gen = new FakeGenerator({ info: { maxContextTokens: 5 } });
  const { call } = setup({ gen });
  const long = await call("/v1/chat/completions", {
    json: { messages: [{ role: "user", content: "a b c d e f" }] },
  });
  assert.equal(long.status, 400);
  const e = (await bodyOf(long)).error as Record<string, unknown>;
  assert.equal(
    e.code,
    "context_length_exceeded",
    "the code client libraries look for to trim a conversation",
  );
  assert.match(String(e.message), /maximum context length is 5 tokens/);
  // before: {"error": "no route POST /v1/embeddings", "code": "NOT_FOUND"}, which the openai client
  // reads as a string error without a code
  const none = await call("/v1/embeddings", { json: { input: "Hi" } });
  assert.equal(none.status, 404);
  const n = (await bodyOf(none)).error as Record<string, unknown>;
  assert.equal(n.code, "not_found");
  assert.equal(n.type, "not_found_error");
  assert.match(String(n.message), /no route POST \/v1\/embeddings/);
  // a chat body that is not JSON gets a chat body as its example, not the gateway's
  const bad = await call("/v1/chat/completions", { method: "POST", body: "{oops", headers: JSON_TYPE });
  assert.equal(bad.status, 400);
  const b = (await bodyOf(bad)).error as Record<string, unknown>;
  assert.equal(b.code, "invalid_json");
  assert.match(String(b.hint), /"messages"/);
  assert.equal(gen.calls.length, 0);
});
