import assert from "node:assert/strict";
import type { Hidden, RemoteSpanSession, RouteServer, SpanTransport } from "../lib/swarm/client/types.ts";
import { delayedTransport } from "./delayed_transport.ts";

const x: Hidden = { data: new Float32Array([1, 2]), shape: [1, 1, 2] };
const server = { peerId: "p" } as RouteServer;
const open = { sessionId: "s", model: "m", start: 0, end: 1, maxLength: 8, batch: 1 };

/** An inner transport that logs its calls into `log` (and `wait` logs the delays). */
function recorder(linked: boolean) {
  const log: string[] = [];
  const remote: RemoteSpanSession = {
    step: (h) => (log.push("step"), Promise.resolve(h)),
    close: () => (log.push("close"), Promise.resolve()),
    ...(linked
      ? {
        links: {
          local: true,
          accept: () => (log.push("accept"), Promise.resolve("ticket")),
          pushTo: () => (log.push("pushTo"), Promise.resolve()),
          lost: () => false,
          send: () => (log.push("send"), Promise.resolve()),
          receive: (stepId: number) => {
            log.push(`receive ${stepId}`);
            return Promise.resolve(
              stepId === 1 ? { hidden: x, trail: [] } : stepId === 2 ? "lost" : undefined,
            );
          },
        },
      }
      : {}),
  };
  const inner: SpanTransport = {
    openInference: () => (log.push("open"), Promise.resolve(remote)),
    forward: (_s, r) => (log.push("forward"), Promise.resolve(r.hidden)),
    ping: () => Promise.resolve(1),
  };
  const wait = (ms: number) => (log.push(`wait ${ms}`), Promise.resolve());
  return { log, inner, wait };
}

Deno.test("delayedTransport: each request and its reply wait one way; pushes between servers do not", async () => {
  const { log, inner, wait } = recorder(true);
  const t = delayedTransport(inner, 7, wait);
  const r = await t.openInference(server, open);
  assert.deepEqual(log.splice(0), ["wait 7", "open", "wait 7"]);
  assert.equal(await r.step(x, { stepId: 0, startFromPosition: 0 }), x);
  assert.deepEqual(log.splice(0), ["wait 7", "step", "wait 7"]);
  const links = r.links!;
  assert.equal(await links.accept(), "ticket");
  await links.pushTo("ticket");
  assert.deepEqual(log.splice(0), ["wait 7", "accept", "wait 7", "wait 7", "pushTo", "wait 7"]);
  await links.send(x, { stepId: 1, startFromPosition: 0, push: 2 });
  assert.deepEqual(log.splice(0), ["wait 7", "send"]);
  // a reply travels back to the client; a lost link or an ended wait is news, not a message
  assert.deepEqual(await links.receive(1, { pushed: true }), { hidden: x, trail: [] });
  assert.equal(await links.receive(2, { pushed: true }), "lost");
  assert.equal(await links.receive(3, { pushed: true }), undefined);
  assert.deepEqual(log.splice(0), ["receive 1", "wait 7", "receive 2", "receive 3"]);
  assert.equal(await t.ping!(server), 15);
  await t.forward(server, { model: "m", start: 0, end: 1, hidden: x });
  await r.close();
  assert.deepEqual(log.splice(0), ["wait 7", "forward", "wait 7", "close"]);
});

Deno.test("delayedTransport: a session without links stays without; 0 ms waits for nothing; bad delays are RangeErrors", async () => {
  const { log, inner, wait } = recorder(false);
  const r = await delayedTransport(inner, 0, wait).openInference(server, open);
  assert.equal(r.links, undefined);
  await r.step(x, { stepId: 0, startFromPosition: 0 });
  assert.deepEqual(log, ["open", "step"]);
  for (const bad of [-1, Number.NaN, Infinity]) {
    assert.throws(
      () => delayedTransport(inner, bad),
      (e) => e instanceof RangeError && e.message.includes(`${bad}`),
    );
  }
});
