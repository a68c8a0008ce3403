import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator } from "../testing/mod.ts";
import { ApiHandler, type ApiHandlerOptions } from "./api_handler.ts";

function setup(options: Partial<ApiHandlerOptions> & { gen?: FakeGenerator } = {}) {
  const gen = options.gen ?? new FakeGenerator();
  const handler = new ApiHandler({ generator: gen, metrics: new Metrics(), ...options });
  return { gen, handler, app: handler.app };
}

const JSON_TYPE = { "content-type": "application/json" };

Deno.test("body cap: a declared Content-Length over the cap gets 413 without the body being read", async () => {
  const { gen, app } = setup({ maxBodyBytes: 1000 });
  let pulls = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulls++;
      c.enqueue(new Uint8Array(10));
    },
  });
  const r = await app.request("/api/v1/generate", {
    method: "POST",
    body,
    headers: { ...JSON_TYPE, "content-length": "10485760" },
  });
  assert.equal(r.status, 413);
  const b = await r.json();
  assert.equal(b.code, "BODY_TOO_LARGE");
  assert.match(b.error, /10485760 bytes \(Content-Length\), the limit is 1000 bytes/);
  assert.ok(pulls <= 1, `pulled ${pulls} chunks`);
  assert.equal(gen.calls.length, 0);
});

Deno.test("body cap: a streamed body is refused as soon as it passes the cap", async () => {
  const { gen, app } = setup({ maxBodyBytes: 256 * 1024 });
  let pulled = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled += 64 * 1024;
      c.enqueue(new Uint8Array(64 * 1024).fill(32));
      if (pulled >= 10 * 1024 * 1024) c.close();
    },
  });
  const r = await app.request("/v1/chat/completions", { method: "POST", body, headers: JSON_TYPE });
  assert.equal(r.status, 413);
  const b = await r.json();
  assert.equal(b.error.code, "body_too_large");
  assert.match(b.error.message, /more than 262144 bytes/);
  assert.ok(pulled < 1024 * 1024, `read ${pulled} bytes of a 10 MiB body`);
  assert.equal(gen.calls.length, 0);
});

Deno.test("bearer token: a header that is not 'Bearer <token>' gets 401 too; /health/ and HEAD /health stay open", async () => {
  const { app } = setup({ apiSecret: "s3cret-token" });
  for (const authorization of ["Basic czNjcmV0", "Bearer", "Bearer two words", "s3cret-token"]) {
    const r = await app.request("/metrics", { headers: { authorization } });
    assert.equal(r.status, 401, authorization);
    assert.equal(r.headers.get("www-authenticate"), "Bearer");
    assert.equal((await r.json()).code, "UNAUTHORIZED");
  }
  assert.equal(
    (await app.request("/metrics", { headers: { authorization: "bearer  s3cret-token" } })).status,
    200,
  );
  assert.equal((await app.request("/health/")).status, 200);
  const head = await app.request("/health", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
});

Deno.test("a generation needs Content-Type: application/json; text/plain or none gets 415 (no CORS-simple POST)", async () => {
  const { gen, app } = setup();
  const body = JSON.stringify({ inputs: "a", parameters: { max_new_tokens: 1 } });
  for (
    const type of [
      "text/plain;charset=UTF-8",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
      null,
    ]
  ) {
    const headers: Record<string, string> = type ? { "content-type": type } : {};
    const r = await app.request("/api/v1/generate", {
      method: "POST",
      body: new TextEncoder().encode(body),
      headers,
    });
    assert.equal(r.status, 415, String(type));
    const b = await r.json();
    assert.equal(b.code, "UNSUPPORTED_MEDIA_TYPE");
    assert.match(b.hint, /Content-Type: application\/json/);
  }
  const chat = await app.request("/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: "x" }] }),
    headers: { "content-type": "text/plain" },
  });
  assert.equal(chat.status, 415);
  assert.equal((await chat.json()).error.code, "unsupported_media_type");
  assert.equal(gen.calls.length, 0, "nothing was generated");
  for (const type of ["application/json", "application/json; charset=utf-8", "Application/JSON"]) {
    const r = await app.request("/api/v1/generate", {
      method: "POST",
      body,
      headers: { "content-type": type },
    });
    assert.equal(r.status, 200, type);
  }
});

Deno.test("a request carrying an Origin that API_CORS_ORIGINS does not list gets 403, preflight included", async () => {
  const { gen, app } = setup();
  const origin = { origin: "https://evil.example" };
  const post = await app.request("/api/v1/generate", {
    method: "POST",
    body: JSON.stringify({ inputs: "a" }),
    headers: { ...JSON_TYPE, ...origin },
  });
  assert.equal(post.status, 403);
  const b = await post.json();
  assert.equal(b.code, "ORIGIN_NOT_ALLOWED");
  assert.match(b.error, /https:\/\/evil\.example/);
  assert.match(b.hint, /API_CORS_ORIGINS/);
  assert.equal(post.headers.get("access-control-allow-origin"), null);
  const pre = await app.request("/api/v1/generate", {
    method: "OPTIONS",
    headers: {
      ...origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
    },
  });
  assert.equal(pre.status, 403);
  assert.equal(pre.headers.get("access-control-allow-origin"), null);
  assert.equal((await app.request("/health", { headers: { origin: "null" } })).status, 403);
  assert.equal(gen.calls.length, 0);
  // the gateway and curl send no Origin
  assert.equal((await app.request("/health")).status, 200);
});

Deno.test("a listed origin gets CORS answers: preflight 204 with methods and headers, ACAO on answers and errors", async () => {
  const { app } = setup({ corsOrigins: ["https://app.example"], apiSecret: "s3cret-token" });
  const origin = { origin: "https://app.example" };
  const pre = await app.request("/v1/chat/completions", {
    method: "OPTIONS",
    headers: {
      ...origin,
      "access-control-request-method": "POST",
      // the official openai client adds its own headers: before, only the first two were allowed
      // and a browser's preflight failed
      "access-control-request-headers":
        "authorization, content-type, x-stainless-os, x-stainless-retry-count",
    },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(pre.headers.get("access-control-allow-methods") ?? "", /POST/);
  for (const h of ["authorization", "content-type", "x-stainless-os", "x-stainless-retry-count"]) {
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", new RegExp(h, "i"));
  }
  assert.match(pre.headers.get("vary") ?? "", /Origin/);
  const ok = await app.request("/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: "x" }], max_tokens: 1 }),
    headers: { ...origin, ...JSON_TYPE, authorization: "Bearer s3cret-token" },
  });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
  assert.match(ok.headers.get("vary") ?? "", /Origin/);
  const refused = await app.request("/metrics", { headers: origin });
  assert.equal(refused.status, 401);
  assert.equal(
    refused.headers.get("access-control-allow-origin"),
    "https://app.example",
    "the page can read why",
  );
  assert.equal(
    (await app.request("/health", { headers: { origin: "https://app.example:8443" } })).status,
    403,
  );
});

/** A request body that sends `head`, then waits until `finish(tail)` (or is cancelled). */
function slowBody(head: string) {
  const enc = new TextEncoder();
  let finish!: (tail: string) => void;
  const tail = new Promise<string>((r) => (finish = r));
  let sawPull!: () => void;
  const pulled = new Promise<void>((r) => (sawPull = r));
  let cancelled = false;
  let step = 0;
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (step++ === 0) return c.enqueue(enc.encode(head));
      sawPull();
      c.enqueue(enc.encode(await tail));
      c.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, finish, pulled, cancelled: () => cancelled };
}

Deno.test("a slow body holds no generation slot: others generate meanwhile; the slot is taken after the body", async () => {
  const head = '{"inputs": "slow", "parameters": {"max_new_tokens": 1}';
  // with a declared length the route read the body itself (after taking the slot); chunked, bodyLimit did
  const lengths: Array<Record<string, string>> = [{ "content-length": String(head.length + 1) }, {}];
  for (const length of lengths) {
    const { gen, app, handler } = setup({ maxConcurrent: 1, bodyTimeoutMs: 60_000 });
    const slow = slowBody(head);
    const a = app.request("/api/v1/generate", {
      method: "POST",
      body: slow.stream,
      headers: { ...JSON_TYPE, ...length },
    });
    await slow.pulled; // the API is reading the slow body now
    assert.equal(handler.inFlight, 0, "no slot while the body arrives");
    const b = await app.request("/api/v1/generate", {
      method: "POST",
      body: JSON.stringify({ inputs: "quick", parameters: { max_new_tokens: 1 } }),
      headers: JSON_TYPE,
    });
    assert.equal(b.status, 200, "the only slot was free for another client");
    slow.finish("}");
    const ra = await a;
    assert.equal(ra.status, 200);
    assert.deepEqual(gen.calls.map((c) => c.prompt), ["quick", "slow"]);
  }
});

Deno.test("a body is validated before a slot is taken: a bad one gets 400 even when every slot is busy", async () => {
  const { gen, app } = setup({ maxConcurrent: 1 });
  const gate = gen.hold();
  const running = app.request("/api/v1/generate", {
    method: "POST",
    body: JSON.stringify({ inputs: "a", parameters: { max_new_tokens: 1 } }),
    headers: JSON_TYPE,
  });
  await gen.started(1);
  const bad = await app.request("/api/v1/generate", {
    method: "POST",
    body: JSON.stringify({ inputs: "" }),
    headers: JSON_TYPE,
  });
  assert.equal(bad.status, 400);
  const chat = await app.request("/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ model: "gpt-4", messages: [{ role: "user", content: "x" }] }),
    headers: JSON_TYPE,
  });
  assert.equal(chat.status, 404, "an unknown model is refused before the limit too");
  gate.open();
  assert.equal((await running).status, 200);
});

Deno.test("a body that does not arrive within the body deadline gets 408 and its stream is cancelled", async () => {
  const { gen, app, handler } = setup({ bodyTimeoutMs: 50 });
  for (const headers of [JSON_TYPE, { ...JSON_TYPE, "content-length": "1000" }]) {
    const slow = slowBody('{"inputs": "never ends"');
    let guard: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      app.request("/api/v1/generate", { method: "POST", body: slow.stream, headers }),
      new Promise<"hung">((resolve) => (guard = setTimeout(() => resolve("hung"), 10_000))),
    ]);
    clearTimeout(guard);
    slow.finish("}");
    assert.ok(r instanceof Response, "the request was answered");
    assert.equal(r.status, 408);
    const b = await r.json();
    assert.equal(b.code, "BODY_TIMEOUT");
    assert.match(b.error, /within 50 ms/);
    assert.ok(slow.cancelled(), "the body stream was cancelled");
  }
  assert.equal(gen.calls.length, 0);
  assert.equal(handler.inFlight, 0);
});
