import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator } from "./_fake_generator.ts";
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
