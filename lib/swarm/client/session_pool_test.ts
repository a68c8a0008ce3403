import assert from "node:assert/strict";
import { ConfigError, SwarmError } from "../../errors.ts";
import { fakeHidden } from "../../testing/mod.ts";
import { type PoolableSession, SessionPool, type SessionPoolOptions } from "./session_pool.ts";
import type { Hidden } from "./types.ts";

/** A session that records its steps' start positions; `fail` makes the next step throw. */
class Recorded implements PoolableSession {
  static opened = 0;
  readonly id = ++Recorded.opened;
  position = 0;
  closed = false;
  closes = 0;
  fail = false;
  readonly starts: number[] = [];
  constructor(readonly maxLength: number, readonly batch = 1) {}
  step(hidden: Hidden, o: { startFromPosition?: number } = {}): Promise<Hidden> {
    const p = o.startFromPosition ?? this.position;
    this.starts.push(p);
    if (this.fail) return Promise.reject(new SwarmError("SESSION_FAILED", "scripted failure", { hint: "-" }));
    this.position = p + hidden.shape[1];
    return Promise.resolve(hidden);
  }
  close(): Promise<void> {
    this.closed = true;
    this.closes++;
    return Promise.resolve();
  }
}

function pool(extra: Partial<SessionPoolOptions<Recorded>> = {}) {
  let t = 0;
  const opened: Recorded[] = [];
  const p = new SessionPool<Recorded>({
    open: (maxLength, batch) => {
      const s = new Recorded(maxLength, batch);
      opened.push(s);
      return s;
    },
    now: () => t,
    ...extra,
  });
  return { p, opened, advance: (ms: number) => void (t += ms) };
}

const x5 = fakeHidden(1, 5, 4, 1), x1 = fakeHidden(1, 1, 4, 2);

Deno.test("a finished generation's session serves the next one from position 0", async () => {
  const { p, opened } = pool();
  const a = p.lease(40);
  await a.step(x5);
  await a.step(x1);
  assert.equal(a.position, 6);
  await a.close();
  assert.equal(p.idle, 1);
  assert.equal(opened[0].closed, false, "kept open for the next generation");

  const b = p.lease(32);
  assert.equal(b.session, opened[0]);
  assert.equal(b.reused, true);
  assert.equal(b.position, 0, "a new generation starts empty");
  await b.step(x5);
  await b.step(x1);
  // the first step of the new generation rolls the servers back to 0; the next goes on from there
  assert.deepEqual(opened[0].starts, [0, 5, 0, 5]);
  assert.equal(b.position, 6);
  assert.deepEqual(p.stats, { opened: 1, reused: 1, retired: 0 });
});

Deno.test("a lease takes the smallest idle session that holds it, not one 4× too large, else opens one", async () => {
  const { p, opened } = pool();
  const leases = [p.lease(100), p.lease(50), p.lease(70), p.lease(60, 2), p.lease(1000)];
  for (const l of leases) await l.close();
  assert.equal(p.lease(55).session, opened[2], "70 is the smallest that holds 55 for batch 1");
  // 1000 holds 200 but would keep 5 times its cache reserved: a new session
  assert.equal(p.lease(200).session, opened[5]);
  assert.equal(p.lease(60, 2).session, opened[3], "batches must match");
  assert.equal(p.lease(60, 3).session, opened[6]);
  assert.equal(p.lease(250).session, opened[4], "4 × 250 = 1000: taken");
});

Deno.test("a session whose step failed, or that is closed mid-step, is closed, not reused", async () => {
  const { p, opened } = pool();
  const a = p.lease(40);
  await a.step(x5);
  opened[0].fail = true;
  await assert.rejects(() => a.step(x1), (e) => e instanceof SwarmError && e.code === "SESSION_FAILED");
  await a.close();
  assert.equal(opened[0].closed, true);
  assert.equal(p.idle, 0);

  const b = p.lease(40);
  let release!: () => void;
  b.session.step = () => new Promise((r) => release = () => r(x1));
  const running = b.step(x1);
  await b.close();
  assert.equal(b.session.closed, true, "a step still running: the session's state is unknown");
  release();
  await running;
  assert.equal(p.idle, 0);
  await assert.rejects(() => b.step(x1), (e) => e instanceof SwarmError && e.code === "SESSION_CLOSED");
  await b.close(); // idempotent
  assert.equal(opened[1].closes, 1);
});

Deno.test("idle sessions expire, old ones are not reused, the pool holds at most maxIdle", async () => {
  const { p, opened, advance } = pool({ idleMs: 1000, maxAgeMs: 5000, maxIdle: 2 });
  await p.lease(10).close();
  advance(999);
  p.sweep();
  assert.equal(p.idle, 1);
  advance(1);
  p.sweep();
  assert.equal(p.idle, 0, "idle for idleMs: closed");
  assert.equal(opened[0].closed, true);

  // a session opened 4.5 s ago goes back; at 5 s it is retired at the next lease
  const old = p.lease(10);
  advance(4500);
  await old.step(x1);
  await old.close();
  assert.equal(p.idle, 1);
  advance(500);
  const fresh = p.lease(10);
  assert.notEqual(fresh.session, old.session);
  assert.equal(old.session.closed, true);
  // one that is past maxAge when its generation ends is closed at once
  advance(5000);
  await fresh.close();
  assert.equal(fresh.session.closed, true);

  const three = [p.lease(10), p.lease(10), p.lease(10)];
  for (const l of three) await l.close();
  assert.equal(p.idle, 2);
  assert.equal(three[0].session.closed, true, "over maxIdle: the longest idle goes");
  assert.equal(three[2].session.closed, false);
});

Deno.test("an idle session counts from its last step: a lease that ran none does not make it younger", async () => {
  const { p, advance } = pool({ idleMs: 1000 });
  const a = p.lease(10);
  await a.step(x1);
  advance(600);
  await a.close(); // given back 600 ms after its last step
  advance(300);
  const b = p.lease(10);
  assert.equal(b.session, a.session);
  assert.equal(b.lastActive, 0);
  advance(200);
  await b.close(); // no step: still idle since t = 0, 1100 ms ago
  assert.equal(b.session.closed, true);
  assert.equal(p.idle, 0);

  // a streamed generation whose reader was slow: given back long after its last step
  const c = p.lease(10);
  await c.step(x1);
  advance(1000);
  await c.close();
  assert.equal(c.session.closed, true);
});

Deno.test("an unusable idle session (e.g. a banned server on its route) is closed and skipped", async () => {
  const unusable = new Set<number>();
  const { p, opened } = pool({ usable: (s) => !unusable.has(s.id) });
  await p.lease(10).close();
  unusable.add(opened[0].id);
  const l = p.lease(10);
  assert.notEqual(l.session, opened[0]);
  assert.equal(opened[0].closed, true);
  assert.deepEqual(p.stats, { opened: 2, reused: 0, retired: 1 });
});

Deno.test("maxIdle 0 turns reuse off; stop closes the idle sessions and every later lease's", async () => {
  const off = pool({ maxIdle: 0 });
  const a = off.p.lease(10);
  await a.close();
  assert.equal(a.session.closed, true);

  const { p } = pool();
  const b = p.lease(10), c = p.lease(10);
  await b.close();
  await p.stop();
  assert.equal(b.session.closed, true);
  await c.close();
  assert.equal(c.session.closed, true);
  await p.stop(); // idempotent
});

Deno.test("bad pool options are refused with the value", () => {
  for (const [k, v] of [["maxIdle", -1], ["idleMs", 1.5], ["maxAgeMs", Number.NaN]] as const) {
    assert.throws(
      () => new SessionPool<Recorded>({ open: (n) => new Recorded(n), [k]: v }),
      (e) =>
        e instanceof ConfigError && e.code === "CONFIG_INVALID" && e.message.includes(k) &&
        e.message.includes(String(v)) && e.hint.length > 0,
    );
  }
});
