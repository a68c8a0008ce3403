import assert from "node:assert/strict";
import { Hono } from "hono";
import { sseStream, type SseWriter } from "./sse_stream.ts";

function appWith(produce: (w: SseWriter) => Promise<void>, onEnd: () => void): Hono {
  const app = new Hono();
  app.get("/", (c) => sseStream(c, produce, onEnd));
  return app;
}

Deno.test("sseStream writes data events with our headers and calls onEnd once after the producer", async () => {
  let ends = 0;
  const app = appWith(async (w) => {
    assert.equal(w.send({ a: 1 }), true);
    await Promise.resolve();
    w.sendRaw("[DONE]");
  }, () => ends++);
  const r = await app.request("/");
  assert.equal(r.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(r.headers.get("cache-control"), "no-cache");
  assert.equal(r.headers.get("x-accel-buffering"), "no");
  assert.equal(r.headers.get("transfer-encoding"), null);
  assert.equal(await r.text(), 'data: {"a":1}\n\ndata: [DONE]\n\n');
  assert.equal(ends, 1);
});

Deno.test("sseStream: cancelling the body aborts the writer's signal; writes then report false", async () => {
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => (resolveEnd = r));
  let afterCancel: boolean | undefined;
  const app = appWith(async (w) => {
    w.send({ first: true });
    await new Promise<void>((resolve) => w.signal.addEventListener("abort", () => resolve(), { once: true }));
    afterCancel = w.send({ late: true });
  }, resolveEnd);
  const r = await app.request("/");
  const reader = r.body!.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), 'data: {"first":true}\n\n');
  await reader.cancel();
  await ended;
  assert.equal(afterCancel, false);
});

Deno.test("sseStream: a client that does not read does not hold the producer", async () => {
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => (resolveEnd = r));
  const app = appWith((w) => {
    for (let i = 0; i < 1000; i++) w.send({ i, pad: "x".repeat(100) });
    w.sendRaw("[DONE]");
    return Promise.resolve();
  }, resolveEnd);
  const r = await app.request("/");
  await ended; // before anything was read (a blocking write would hang here)
  const events = (await r.text()).split("\n\n").filter(Boolean);
  assert.equal(events.length, 1001);
});
