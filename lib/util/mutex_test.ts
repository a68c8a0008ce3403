import assert from "node:assert/strict";
import { Mutex } from "./mutex.ts";

Deno.test("Mutex: holders run one at a time, in the order they asked", async () => {
  const m = new Mutex();
  const log: string[] = [];
  let openFirst!: () => void, entered!: () => void;
  const gate = new Promise<void>((r) => (openFirst = r));
  const inFirst = new Promise<void>((r) => (entered = r));
  const first = m.run(async () => {
    log.push("first in");
    entered();
    await gate;
    log.push("first out");
  });
  const second = m.run(() => (log.push("second"), Promise.resolve(2)));
  const third = m.run(() => (log.push("third"), Promise.resolve(3)));
  await inFirst;
  await new Promise((r) => setTimeout(r, 0)); // a turn for the others, were they not held
  assert.ok(m.locked);
  assert.deepEqual(log, ["first in"], "the others wait for the first");
  openFirst();
  assert.deepEqual(await Promise.all([first, second, third]), [undefined, 2, 3]);
  assert.deepEqual(log, ["first in", "first out", "second", "third"]);
  assert.ok(!m.locked);
});

Deno.test("Mutex: a failed holder releases; releasing twice releases once", async () => {
  const m = new Mutex();
  await assert.rejects(m.run(() => Promise.reject(new Error("boom"))), /boom/);
  assert.equal(await m.run(() => Promise.resolve("next")), "next");
  const release = await m.acquire();
  const waiting = m.acquire();
  release();
  release(); // harmless: the waiting hold is not released by it
  const r2 = await waiting;
  assert.ok(m.locked);
  r2();
  assert.ok(!m.locked);
});

Deno.test("Mutex: a waiter whose signal aborts gives up its place; the next one still gets its turn", async () => {
  const m = new Mutex();
  const release = await m.acquire();
  const ac = new AbortController();
  const leaving = m.acquire({ signal: ac.signal });
  const order: string[] = [];
  const next = m.run(() => (order.push("next"), Promise.resolve()));
  const reason = new Error("caller gave up");
  ac.abort(reason);
  await assert.rejects(leaving, (e) => e === reason);
  assert.deepEqual(order, [], "the first holder still holds it");
  release();
  await next;
  assert.deepEqual(order, ["next"]);
  assert.equal(m.locked, false);
  await assert.rejects(m.acquire({ signal: ac.signal }), (e) => e === reason, "already aborted: at once");
  assert.equal(m.locked, false);
});
