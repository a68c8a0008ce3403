import assert from "node:assert/strict";
import { sseResponse } from "./sse_response.ts";

Deno.test("sseResponse writes data events and calls onEnd once after the producer", async () => {
  let ends = 0;
  const r = sseResponse(async (w) => {
    assert.equal(w.send({ a: 1 }), true);
    await Promise.resolve();
    w.sendRaw("[DONE]");
  }, { onEnd: () => ends++ });
  assert.equal(r.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(await r.text(), 'data: {"a":1}\n\ndata: [DONE]\n\n');
  assert.equal(ends, 1);
});

Deno.test("sseResponse: cancelling the body aborts the writer's signal; writes then report false", async () => {
  let resolveEnd!: () => void;
  const ended = new Promise<void>((r) => (resolveEnd = r));
  let afterCancel: boolean | undefined;
  const r = sseResponse(async (w) => {
    w.send({ first: true });
    await new Promise<void>((resolve) => w.signal.addEventListener("abort", () => resolve(), { once: true }));
    afterCancel = w.send({ late: true });
  }, { onEnd: resolveEnd });
  const reader = r.body!.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value), 'data: {"first":true}\n\n');
  await reader.cancel();
  await ended;
  assert.equal(afterCancel, false);
});
