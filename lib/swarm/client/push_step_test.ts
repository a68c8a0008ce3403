import assert from "node:assert/strict";
import { fakeHidden } from "../../testing/mod.ts";
import { pushStep } from "./push_step.ts";
import { pushDeadlineMs } from "./step_deadline.ts";
import { newSpan, SessionState } from "./session_state.ts";
import type { Hidden, PushReply, RouteServer, SpanLinks, SpanTransport, SwarmTableView } from "./types.ts";

type Answer = PushReply | "lost" | Error | "wait";

/**
 * A chain of `n` linked spans; `answers[k]` is what span k's `receive` settles with ("wait": only
 * when the push ends it); `sendFails` makes the first span's `send` fail.
 */
function chain(n: number, answers: Answer[], sendFails?: Error, stepTimeoutMs?: number) {
  const table: SwarmTableView = { servers: () => [] };
  const s = new SessionState({
    model: "m",
    start: 0,
    end: n,
    maxLength: 8,
    table,
    transport: {} as SpanTransport,
    stepTimeoutMs,
  });
  /** Why the push ended each span's wait. */
  const ended: unknown[] = [];
  const sent: { push: number; stepId: number }[] = [];
  const { promise: wasSent, resolve: onSent } = Promise.withResolvers<void>();
  s.chain = Array.from({ length: n }, (_, k) => {
    const span = newSpan(k, k + 1, [], { peerId: `P${k}`, start: k, end: k + 1 } as RouteServer);
    const links: SpanLinks = {
      local: true,
      accept: () => Promise.resolve(k),
      pushTo: () => Promise.resolve(),
      lost: () => false,
      send: (_h, o) => {
        sent.push({ push: o.push, stepId: o.stepId });
        onSent();
        if (o.signal?.aborted) return Promise.reject(o.signal.reason);
        return sendFails ? Promise.reject(sendFails) : Promise.resolve();
      },
      receive: (_id, o) => {
        const a = answers[k];
        if (a instanceof Error) return Promise.reject(a);
        if (a !== "wait") return Promise.resolve(a);
        if (o.until!.aborted) return Promise.resolve(undefined);
        return new Promise((r) =>
          o.until!.addEventListener("abort", () => (ended.push(o.until!.reason), r(undefined)), {
            once: true,
          })
        );
      },
    };
    span.remote = { step: (h) => Promise.resolve(h), close: () => Promise.resolve(), links };
    return span;
  });
  for (let k = 0; k + 1 < n; k++) {
    s.chain[k].link = { from: s.chain[k].remote!, to: s.chain[k + 1].remote!, ticket: k + 1, ok: true };
  }
  return { s, sent, wasSent, ended };
}

const x = fakeHidden(1, 1, 8, 1);
const y = (seed: number): Hidden => fakeHidden(1, 1, 8, seed);

Deno.test("pushStep: the last span's reply carries every output; histories and counters follow", async () => {
  const reply: PushReply = { hidden: y(3), trail: [y(1), y(2)] };
  const { s, sent } = chain(3, ["wait", "wait", reply]);
  s.bans.ban("P1");
  const r = await pushStep(s, 0, 2, x, 0, 7);
  assert.deepEqual(r, { last: y(3), spans: 3 });
  assert.deepEqual(sent, [{ push: 2, stepId: 7 }]);
  assert.deepEqual(s.chain.map((span) => span.history), [[x], [y(1)], [y(2)]]);
  assert.equal(s.stats.pushed, 2);
  assert.ok(!s.bans.isBanned("P1"), "a server that replied is cleared");
  assert.ok(s.chain.every((span) => !span.lock.locked), "every session released");
});

Deno.test("pushStep: a push that stops early covers the spans up to where it stopped", async () => {
  const { s } = chain(3, ["wait", { hidden: y(2), trail: [y(1)] }, "wait"]);
  assert.deepEqual(await pushStep(s, 0, 2, x, 0, 1), { last: y(2), spans: 2 });
  assert.equal(s.stats.pushed, 1);
  assert.deepEqual(s.chain[2].history, []);
});

Deno.test("pushStep: a lost link, a failed server, a wrong trail or a bad reply give undefined (the step then relays)", async () => {
  const cases: [string, Answer[]][] = [
    ["lost", ["wait", "lost", "wait"]],
    ["failed", [new Error("reset"), "wait", "wait"]],
    ["short trail", ["wait", "wait", { hidden: y(3), trail: [y(1)] }]],
    ["bad reply", ["wait", "wait", { hidden: fakeHidden(1, 2, 8, 3), trail: [y(1), y(2)] }]],
  ];
  for (const [what, answers] of cases) {
    const { s } = chain(3, answers);
    assert.equal(await pushStep(s, 0, 2, x, 0, 1), undefined, what);
    assert.deepEqual(s.chain.map((span) => span.history), [[], [], []], what);
    assert.equal(s.stats.pushed, 0);
  }
  const { s } = chain(2, ["wait", "wait"], new Error("send failed"));
  assert.equal(await pushStep(s, 0, 1, x, 0, 1), undefined);
});

Deno.test("pushStep: the caller's abort ends it with the caller's reason", async () => {
  const ac = new AbortController();
  const reason = new Error("caller gave up");
  const { s, wasSent } = chain(2, ["wait", "wait"]);
  const p = pushStep(s, 0, 1, x, 0, 1, { signal: ac.signal });
  await wasSent; // the push is under way: the spans wait for their replies
  ac.abort(reason);
  await assert.rejects(p, (e) => e === reason);
  assert.ok(s.chain.every((span) => !span.lock.locked));
});

Deno.test("pushStep: a push no span answers ends at the push's deadline, and the rerun takes over", async () => {
  const { s, ended } = chain(5, ["wait", "wait", "wait", "wait", "wait"], undefined, 40);
  assert.equal(await pushStep(s, 0, 4, x, 0, 1), "timed out", "its spans' rerun gets the shorter base");
  assert.equal(ended.length, 5);
  assert.match(String(ended[0]), new RegExp(`no reply within ${pushDeadlineMs(1, [1, 1, 1, 1, 1], 40)} ms`));
  assert.ok(s.chain.every((span) => !span.lock.locked));
});
