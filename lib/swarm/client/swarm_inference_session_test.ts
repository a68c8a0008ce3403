import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { fakeHidden } from "../../testing/mod.ts";
import { memoryLogger } from "../../util/logger.ts";
import {
  H,
  referenceOutputs,
  run,
  session,
  STEPS,
  threeSpans,
} from "../../../tests/helpers/inference_session_fixture.ts";
import { BanList } from "./ban_list.ts";
import type { Hidden, PushReply, RemoteSpanSession, SpanTransport } from "./types.ts";

Deno.test("a 3-span session equals the single-process run of the whole model", async () => {
  const swarm = await threeSpans();
  const s = session(swarm);
  const out = await run(s);
  assert.deepEqual(out, await referenceOutputs(swarm));
  assert.equal(s.position, 11);
  assert.deepEqual(s.route.map((r) => `${r.server.peerId}:${r.start}-${r.end}`), ["A:0-3", "B:3-6", "C:6-9"]);
  assert.equal(s.stats.failures, 0);
  await s.close();
  await s.close();
  for (const srv of swarm.servers_.values()) assert.equal(srv.backend.info().openSessions, 0, "caches freed");
  await assert.rejects(() => s.step(STEPS[1]), (e) => e instanceof SwarmError && e.code === "SESSION_CLOSED");
});

Deno.test("open() routes and opens every span up front; the steps that follow give the same output", async () => {
  const swarm = await threeSpans();
  const s = session(swarm);
  await s.open();
  assert.deepEqual(s.route.map((r) => `${r.server.peerId}:${r.start}-${r.end}`), ["A:0-3", "B:3-6", "C:6-9"]);
  for (const srv of swarm.servers_.values()) {
    assert.equal(srv.backend.info().openSessions, 1, "opened before any step");
  }
  assert.equal(s.position, 0);
  assert.deepEqual(await run(s), await referenceOutputs(swarm));
  assert.equal(s.stats.failures, 0);
  await s.close();
});

Deno.test("failover: a server killed at every step ≥ 2 (each position in the chain) gives identical output", async () => {
  const reference = await referenceOutputs(await threeSpans());
  for (const victim of ["A", "B", "C"]) {
    for (let killAt = 2; killAt < STEPS.length; killAt++) {
      const swarm = await threeSpans();
      await swarm.addServer(
        `${victim}-spare`,
        swarm.servers_.get(victim)!.record.start,
        swarm.servers_.get(victim)!.record.end,
      );
      // the spare is slower so the first route avoids it
      swarm.servers_.get(`${victim}-spare`)!.record = {
        ...swarm.servers_.get(`${victim}-spare`)!.record,
        inferenceRps: 1,
      };
      let step = 0;
      swarm.onStep = (e) => {
        if (e.peerId === victim && step === killAt) swarm.kill(victim);
      };
      const bans = new BanList();
      const s = session(swarm, { bans });
      const out: Float32Array[] = [];
      for (const x of STEPS) {
        out.push((await s.step(x)).data.slice());
        step++;
      }
      assert.deepEqual(out, reference, `victim ${victim} killed at step ${killAt}`);
      assert.equal(s.stats.failures, 1);
      assert.equal(s.stats.replacements, 1);
      assert.equal(
        s.stats.replayedTokens,
        5 + killAt - 1,
        "replayed exactly the history before the failed step",
      );
      assert.equal(bans.isBanned(victim), true);
      assert.ok(s.route.some((r) => r.server.peerId === `${victim}-spare`));
      await s.close();
    }
  }
});

Deno.test("failure during prefill is replayed transparently", async () => {
  const swarm = await threeSpans();
  await swarm.addServer("B2", 3, 6, { inferenceRps: 1 });
  swarm.onStep = (e) => {
    if (e.peerId === "B") swarm.kill("B");
  };
  const { logger, records } = memoryLogger();
  const s = session(swarm, { logger });
  assert.deepEqual(await run(s), await referenceOutputs(swarm));
  assert.deepEqual(s.route.map((r) => r.server.peerId), ["A", "B2", "C"]);
  assert.ok(records.some((r) => r.level === "warn" && r.msg.includes("re-routing") && r.peer === "B"));
});

Deno.test("the replacement may cover the failed span in two pieces", async () => {
  const swarm = await threeSpans();
  await swarm.addServer("B-lo", 3, 5, { inferenceRps: 1 });
  await swarm.addServer("B-hi", 5, 8, { inferenceRps: 1 });
  swarm.onStep = (e) => {
    if (e.peerId === "B" && e.startFromPosition === 7) swarm.kill("B");
  };
  const s = session(swarm);
  assert.deepEqual(await run(s), await referenceOutputs(swarm));
  assert.deepEqual(s.route.map((r) => `${r.server.peerId}:${r.start}-${r.end}`), [
    "A:0-3",
    "B-lo:3-5",
    "B-hi:5-6",
    "C:6-9",
  ]);
  assert.equal(s.stats.replacements, 2);
  // the truncated piece of B-hi opened only blocks 5..6
  assert.equal(swarm.servers_.get("B-hi")!.backend.stats.sessionsOpened, 1);
});

Deno.test("a replacement that fails during its own replay is replaced again", async () => {
  const swarm = await threeSpans();
  await swarm.addServer("C2", 6, 9, { inferenceRps: 10 });
  await swarm.addServer("C3", 6, 9, { inferenceRps: 1 });
  swarm.onStep = (e) => {
    if (e.peerId === "C" && e.startFromPosition === 6) swarm.kill("C");
    if (e.peerId === "C2") swarm.kill("C2");
  };
  const s = session(swarm);
  assert.deepEqual(await run(s), await referenceOutputs(swarm));
  assert.equal(s.route[2].server.peerId, "C3");
  assert.equal(s.stats.failures, 2);
});

Deno.test("no replacement: a clear MISSING_BLOCKS-caused error after bounded retries, no hang", async () => {
  const swarm = await threeSpans();
  swarm.onStep = (e) => {
    if (e.peerId === "B" && e.startFromPosition === 6) swarm.kill("B");
  };
  const s = session(swarm, { maxRetries: 3 });
  const out: unknown[] = [];
  await assert.rejects(
    async () => {
      for (const x of STEPS) out.push(await s.step(x));
    },
    (e) =>
      e instanceof SwarmError && e.code === "SESSION_FAILED" && e.details.lastCode === "MISSING_BLOCKS" &&
      /blocks \[3, 6\).*after 4 attempts/.test(e.message) && /3\.\.5/.test(e.message) && e.hint.length > 0,
  );
  assert.equal(out.length, 2, "the first two steps succeeded");
  assert.equal(s.stats.failures, 4);
  assert.ok(swarm.refreshes >= 3, "the table is refreshed before re-routing");
  // the session survives: once a server for the blocks appears, the failed step can be retried
  await assert.rejects(() => s.step(STEPS[2]), (e) => e instanceof SwarmError && e.code === "SESSION_FAILED");
  await swarm.addServer("B-late", 3, 6);
  for (const x of STEPS.slice(2)) out.push((await s.step(x)).data.slice());
  assert.deepEqual(out.slice(2), (await referenceOutputs(swarm)).slice(2));
  await s.close();
});

Deno.test("servers that died minutes ago (still in the table, bans lapsed) are routed around while a live one covers their span", async () => {
  const swarm = await threeSpans(); // C (6..9) stays alive
  // four faster servers for C's span that died: the table keeps their records until they expire
  for (let k = 1; k <= 4; k++) {
    await swarm.addServer(`C-dead${k}`, 6, 9, { inferenceRps: 1000 * (k + 1) });
    swarm.kill(`C-dead${k}`);
  }
  const reference = await referenceOutputs(swarm);
  let now = 0;
  const bans = new BanList({ now: () => now });
  // the first session finds out the hard way: one failure per dead server, then C
  const first = session(swarm, { bans, maxRetries: 5 });
  assert.deepEqual(await run(first), reference);
  assert.equal(first.stats.failures, 4);
  assert.equal(first.route[2].server.peerId, "C");
  await first.close();
  // 20 s later every ban has lapsed (15 s), but the four are still suspect: a session with a
  // budget of 2 retries does not spend it on them (before: 4 failures in a row, SESSION_FAILED)
  now = 20_000;
  assert.ok(
    ["C-dead1", "C-dead2", "C-dead3", "C-dead4"].every((p) => !bans.isBanned(p) && bans.isSuspect(p)),
  );
  const second = session(swarm, { bans, maxRetries: 2 });
  assert.deepEqual(await run(second), reference);
  assert.equal(second.stats.failures, 0);
  assert.deepEqual(second.route.map((r) => r.server.peerId), ["A", "B", "C"]);
  await second.close();
  // when only a suspect covers a span, it is used (and works again if it came back)
  swarm.kill("C");
  swarm.servers_.get("C-dead4")!.dead = false;
  const third = session(swarm, { bans, maxRetries: 5 });
  assert.deepEqual(await run(third), reference);
  assert.equal(third.route[2].server.peerId, "C-dead4");
  assert.equal(bans.isSuspect("C-dead4"), false, "its success cleared it");
  await third.close();
});

Deno.test("rollback with startFromPosition recomputes from that position on every server", async () => {
  const swarm = await threeSpans();
  const s = session(swarm);
  await run(s, STEPS.slice(0, 4)); // position 8
  const alt = fakeHidden(1, 2, H, 999);
  const y = await s.step(alt, { startFromPosition: 6 });
  assert.equal(s.position, 8);
  const expected = await referenceOutputs(swarm, [STEPS[0], STEPS[1], alt]);
  assert.deepEqual(y.data, expected[2]);
  await assert.rejects(
    () => s.step(alt, { startFromPosition: 9 }),
    /startFromPosition 9 is outside \[0, 8\]/,
  );
  await assert.rejects(
    () => s.step(fakeHidden(1, 60, H)),
    (e) => e instanceof SwarmError && e.code === "TOO_LONG",
  );
  await assert.rejects(() => s.step(fakeHidden(2, 1, H)), /does not fit the session/);
});

Deno.test("caller abort stops a step at once without banning anyone", async () => {
  const swarm = await threeSpans();
  const bans = new BanList();
  const s = session(swarm, { bans });
  await s.step(STEPS[0]);
  swarm.servers_.get("B")!.hang = true;
  const ac = new AbortController();
  const p = s.step(STEPS[1], { signal: ac.signal });
  ac.abort(new Error("user gave up"));
  await assert.rejects(p, /user gave up/);
  assert.deepEqual(bans.banned(), []);
  swarm.kill("B");
});

Deno.test("the first step starts opening every span's session before the first hop; a failed early open is retried", async () => {
  const swarm = await threeSpans();
  const opensAtFirstHop: number[] = [];
  swarm.onStep = () => opensAtFirstHop.push(swarm.opens);
  const s = session(swarm);
  const out = await run(s, STEPS.slice(0, 2));
  assert.equal(opensAtFirstHop[0], 3, "all three sessions were open when span A computed");
  assert.deepEqual(out, (await referenceOutputs(swarm)).slice(0, 2));
  await s.close();

  // C's first open fails (while it is dead), then C comes back: the step's own open succeeds
  const swarm2 = await threeSpans();
  const c = swarm2.servers_.get("C")!;
  c.dead = true;
  let revived = false;
  swarm2.onStep = (e) => {
    if (e.peerId === "A" && !revived) {
      revived = true;
      c.dead = false;
    }
  };
  const s2 = session(swarm2);
  const out2 = await run(s2, STEPS.slice(0, 2));
  assert.deepEqual(out2, (await referenceOutputs(swarm2)).slice(0, 2));
  assert.equal(s2.stats.failures, 0, "a failed early open is not a failure of the step");
  assert.deepEqual(s2.route.map((r) => r.server.peerId), ["A", "B", "C"]);
  await s2.close();
});

Deno.test("the first hop does not wait for later spans' opens; a session closed meanwhile closes what they open", async () => {
  const swarm = await threeSpans();
  let releaseC!: () => void;
  const gate = new Promise<void>((r) => (releaseC = r));
  let opened = 0, closed = 0;
  const transport: SpanTransport = {
    forward: (server, req, options) => swarm.forward(server, req, options),
    async openInference(server, req, { signal } = {}) {
      const remote = await swarm.openInference(server, req, { signal });
      if (server.peerId !== "C") return remote;
      await gate; // C is slow to open
      opened++;
      return {
        step: (h, o) => remote.step(h, o),
        close: async () => {
          closed++;
          await remote.close();
        },
      };
    },
  };
  const hops: string[] = [];
  swarm.onStep = (e) => hops.push(e.peerId);
  const s = session(swarm, { transport });
  const step = s.step(STEPS[0]);
  for (let i = 0; i < 200 && hops.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(hops, ["A", "B"], "A and B computed while C was still opening");
  await s.close();
  releaseC();
  await assert.rejects(step, (err: unknown) => err instanceof SwarmError && err.code === "SESSION_CLOSED");
  assert.ok(opened >= 1);
  assert.equal(closed, opened, "every session C opened after the close was closed again");
  assert.deepEqual(hops, ["A", "B"], "C never computed");
});

Deno.test("links are made in the background: the first step completes while they hang, later steps push; no remote is used by two exchanges at once", async () => {
  const swarm = await threeSpans();
  let openGate!: () => void;
  const gate = new Promise<void>((r) => (openGate = r));
  const overlaps: string[] = [];
  /** A push simulated over the fake swarm: each linked session runs the step and hands it on. */
  type Linked = {
    remote: RemoteSpanSession;
    peer: string;
    next?: Linked;
    busy: number;
    replies: Map<number, PushReply>;
  };
  const transport: SpanTransport = {
    forward: (server, req, options) => swarm.forward(server, req, options),
    async openInference(server, req, { signal } = {}) {
      const remote = await swarm.openInference(server, req, { signal });
      const me: Linked = { remote, peer: server.peerId, busy: 0, replies: new Map() };
      const use = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
        if (++me.busy > 1) overlaps.push(`${me.peer} ${what}`);
        try {
          return await f();
        } finally {
          me.busy--;
        }
      };
      return {
        step: (h, o) => use("step", () => remote.step(h, o)),
        close: () => remote.close(),
        links: {
          local: true,
          accept: () => use("accept", () => Promise.resolve(me)),
          pushTo: (ticket) =>
            use("pushTo", async () => {
              await gate;
              me.next = ticket as Linked;
            }),
          lost: () => false,
          send: (h, o) =>
            use("send", async () => {
              // the pushed run: this span, then the linked ones (each records where the push stops)
              let at: Linked = me, x = h, trail: Hidden[] = [];
              for (let k = 0;; k++) {
                const y = await at.remote.step(x, {
                  stepId: o.stepId,
                  startFromPosition: o.startFromPosition,
                });
                if (k === o.push || !at.next) {
                  at.replies.set(o.stepId!, { hidden: y, trail });
                  return;
                }
                trail = [...trail, y];
                at = at.next;
                x = y;
              }
            }),
          receive: (stepId, o) =>
            use("receive", async () => {
              for (let i = 0; i < 100 && !me.replies.has(stepId) && !o.until?.aborted; i++) {
                await new Promise((r) => setTimeout(r, 1));
              }
              return me.replies.get(stepId);
            }),
        },
      };
    },
  };
  const log = memoryLogger("debug");
  const s = session(swarm, { transport, push: true, logger: log.logger });
  const out = [(await s.step(STEPS[0])).data.slice()];
  assert.equal(s.linkedHops, 0, "both link_to exchanges wait at the gate; the step did not");
  assert.equal(s.stats.pushed, 0);
  openGate();
  for (let i = 0; i < 200 && s.linkedHops < 2; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(s.linkedHops, 2, JSON.stringify(log.records));
  for (const x of STEPS.slice(1)) out.push((await s.step(x)).data.slice());
  assert.deepEqual(out, await referenceOutputs(swarm));
  assert.equal(
    s.stats.pushed,
    2 * (STEPS.length - 1),
    "every step after the first pushed through both links",
  );
  assert.deepEqual(overlaps, []);
  await s.close();
});
