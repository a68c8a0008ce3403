import assert from "node:assert/strict";
import { TimeoutError } from "../errors.ts";
import { isAbort, raceAbort, sleep, untilAborted, withTimeout } from "./abort.ts";

Deno.test("withTimeout rejects with TimeoutError and aborts the inner signal", async () => {
  let inner: AbortSignal | undefined;
  const err = await withTimeout(5, (signal) => {
    inner = signal;
    return new Promise(() => {});
  }).catch((e) => e);
  assert.ok(err instanceof TimeoutError);
  assert.equal(err.code, "TIMEOUT");
  assert.ok(inner?.aborted);
  assert.ok(isAbort(err));
});

Deno.test("withTimeout passes results through and follows the parent signal", async () => {
  assert.equal(await withTimeout(1000, () => Promise.resolve(7)), 7);
  const parent = new AbortController();
  const p = withTimeout(10_000, () => new Promise(() => {}), { signal: parent.signal });
  parent.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
});

Deno.test("sleep is cancellable", async () => {
  const c = new AbortController();
  const p = sleep(10_000, { signal: c.signal });
  c.abort(new Error("cancelled"));
  await assert.rejects(p, /cancelled/);
  await sleep(1);
});

Deno.test("untilAborted resolves once the signal aborts, at once when it already has", async () => {
  const c = new AbortController();
  let done = false;
  const p = untilAborted(c.signal).then(() => (done = true));
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(done, false, "pending while the signal is live");
  c.abort(new Error("stop"));
  await p;
  assert.equal(done, true);
  await untilAborted(AbortSignal.abort()); // already aborted: resolves, never rejects
});

Deno.test("raceAbort: the work's outcome, or the abort's reason first; the work goes on", async () => {
  assert.equal(await raceAbort(Promise.resolve(3), { signal: new AbortController().signal }), 3);
  await assert.rejects(
    raceAbort(Promise.reject(new Error("x")), { signal: new AbortController().signal }),
    /x/,
  );
  const ac = new AbortController();
  let finish!: (v: number) => void;
  const work = new Promise<number>((r) => (finish = r));
  const raced = raceAbort(work, { signal: ac.signal });
  ac.abort(new Error("gone"));
  await assert.rejects(raced, /gone/);
  finish(7);
  assert.equal(await work, 7, "the work itself was not cancelled");
  await assert.rejects(raceAbort(work, { signal: ac.signal }), /gone/, "already aborted: at once");
});
