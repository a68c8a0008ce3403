import assert from "node:assert/strict";
import { SwarmError, TimeoutError } from "../../errors.ts";
import { FakeSwarm } from "../../testing/mod.ts";
import { BanList } from "./ban_list.ts";
import { SessionState } from "./session_state.ts";
import { withRetries } from "./span_retries.ts";
import { SpanRouter } from "./span_routing.ts";

async function setup(
  maxRetries = 3,
  o: { servers?: string[]; backoffMs?: number; bans?: BanList; maxLength?: number } = {},
) {
  const swarm = new FakeSwarm({ numBlocks: 4, hiddenSize: 8 });
  const servers = o.servers ?? ["A", "B"];
  for (const [k, id] of servers.entries()) {
    await swarm.addServer(id, 0, 4, { throughput: k === 0 ? 1000 : 10 });
  }
  const s = new SessionState({
    model: swarm.model,
    start: 0,
    end: 4,
    maxLength: o.maxLength ?? 16,
    table: swarm,
    transport: swarm,
    maxRetries,
    retryBackoff: { initialMs: o.backoffMs ?? 1, maxMs: 2 * (o.backoffMs ?? 1) },
    bans: o.bans,
  });
  return { swarm, s, router: new SpanRouter(s) };
}

Deno.test("withRetries: a failed server is banned and its range re-routed; the work is redone there", async () => {
  const { swarm, s, router } = await setup();
  const tried: string[] = [];
  const r = await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    return tried.length === 1 ? Promise.reject(new Error("reset")) : Promise.resolve("done");
  });
  assert.equal(r, "done");
  assert.deepEqual(tried, ["A", "B"]);
  assert.ok(s.bans.isBanned("A"));
  assert.equal(s.stats.failures, 1);
  assert.equal(s.stats.replacements, 1);
  assert.equal(swarm.refreshes, 1, "the table is refreshed before the retry");
});

Deno.test("withRetries: gives up after maxRetries with SESSION_FAILED naming blocks, servers and the last code", async () => {
  const { s, router } = await setup(1);
  const err = await withRetries(s, router, 0, () => Promise.reject(new SwarmError("BAD_REPLY", "garbled")))
    .then(() => undefined, (e) => e);
  assert.ok(err instanceof SwarmError && err.code === "SESSION_FAILED", String(err));
  assert.match(err.message, /blocks \[0, 4\) of fake\/model failed after 2 attempts/);
  assert.deepEqual(err.details.peers, ["A", "B"]);
  assert.equal(err.details.lastCode, "BAD_REPLY");
  assert.equal(s.stats.failures, 2);
});

Deno.test("withRetries: the only server for the blocks, banned after a failure, is probed again and recovers", async () => {
  const { s, router } = await setup(5, { servers: ["A"], backoffMs: 20, bans: new BanList({ probeMs: 30 }) });
  const tried: string[] = [];
  const r = await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    return tried.length === 1 ? Promise.reject(new Error("connection cut")) : Promise.resolve("done");
  });
  assert.equal(r, "done", "the step went on on A once its probe was due");
  assert.deepEqual(tried, ["A", "A"]);
  // the cut, then at least the immediate retry: no route until the probe was due
  assert.ok(s.stats.failures >= 2, `${s.stats.failures} failures`);
  assert.equal(s.bans.isBanned("A"), true, "the ban stands until a success is reported");
});

Deno.test("withRetries: a server's own INTERNAL error frame fails over like any server failure", async () => {
  const { s, router } = await setup();
  const tried: string[] = [];
  const r = await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    if (tried.length > 1) return Promise.resolve("done");
    // what remoteError() makes of {"type":"error","code":"INTERNAL"} from the server
    return Promise.reject(
      new SwarmError("INTERNAL", "server replied INTERNAL: engine failed", { details: { remote: true } }),
    );
  });
  assert.equal(r, "done");
  assert.deepEqual(tried, ["A", "B"]);
  assert.ok(s.bans.isBanned("A"));
});

Deno.test("withRetries: a local INTERNAL and the caller's abort end it at once, without a ban", async () => {
  const { s, router } = await setup();
  await assert.rejects(
    withRetries(s, router, 0, () => Promise.reject(new SwarmError("INTERNAL", "bug"))),
    (e) => e instanceof SwarmError && e.code === "INTERNAL",
  );
  const ac = new AbortController();
  const reason = new Error("caller gave up");
  await assert.rejects(
    withRetries(s, router, 0, () => {
      ac.abort(reason);
      return Promise.reject(new Error("reset"));
    }, { signal: ac.signal }),
    (e) => e === reason,
  );
  assert.equal(s.stats.failures, 0);
  assert.ok(!s.bans.isBanned("A"));
});

Deno.test("withRetries: a step that starts over reopens a server's ended session once, unbanned; not a hang or a bad reply", async () => {
  const ended = [
    new SwarmError("STREAM_CLOSED", "server closed the stream before replying with result"),
    new SwarmError("TIMEOUT", "server replied TIMEOUT: session closed: idle", { details: { remote: true } }),
    new Error("connection reset"),
  ];
  for (const err of ended) {
    const { s, router } = await setup();
    await withRetries(s, router, 0, async (span) => void await router.openRemote(span));
    const tried: string[] = [];
    const r = await withRetries(s, router, 0, (span) => {
      tried.push(`${span.server!.peerId}${span.remote ? "" : " (new)"}`);
      return tried.length === 1 ? Promise.reject(err) : Promise.resolve("done");
    }, { startsOver: true });
    assert.equal(r, "done");
    assert.deepEqual(tried, ["A", "A (new)"], err.message);
    assert.equal(s.bans.isBanned("A"), false, err.message);
  }
  const others = [
    new TimeoutError("no reply within 60000 ms"), // the client's own timeout: the server hangs
    new SwarmError("BAD_REPLY", "garbled"),
    new SwarmError("CACHE_FULL", "server replied CACHE_FULL", { details: { remote: true } }),
  ];
  for (const err of others) {
    const { s, router } = await setup();
    await withRetries(s, router, 0, async (span) => void await router.openRemote(span));
    const tried: string[] = [];
    await withRetries(s, router, 0, (span) => {
      tried.push(span.server!.peerId);
      return tried.length === 1 ? Promise.reject(err) : Promise.resolve("done");
    }, { startsOver: true });
    assert.deepEqual(tried, ["A", "B"], err.message);
    assert.equal(s.bans.isBanned("A"), true, err.message);
  }
  // without a session there before the attempt (opened by it), a failure is the server's
  const { s, router } = await setup();
  const tried: string[] = [];
  await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    return tried.length === 1 ? Promise.reject(ended[0]) : Promise.resolve("done");
  }, { startsOver: true });
  assert.deepEqual(tried, ["A", "B"]);
});

/** What remoteError() makes of a server's {"type":"error","code":"TOO_LONG"}. */
const refusal = (peer: string) =>
  new SwarmError(
    "TOO_LONG",
    `server replied TOO_LONG: maxLength 99999 exceeds the engine's 8192 (${peer})`,
    {
      details: { remote: true },
    },
  );

Deno.test("withRetries: a server's refusal of the request routes around it for this session and bans it for none", async () => {
  const { s, router } = await setup();
  const tried: string[] = [];
  const r = await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    return tried.length === 1 ? Promise.reject(refusal("A")) : Promise.resolve("done");
  });
  assert.equal(r, "done");
  assert.deepEqual(tried, ["A", "B"]);
  assert.equal(s.bans.isBanned("A"), false, "the client's other sessions still use A");
  assert.equal(s.bans.isSuspect("A"), false);
  assert.ok(s.refusedBy.has("A"));
});

Deno.test("withRetries: a refusal is remembered client-wide for sessions as long; shorter ones still try it", async () => {
  const bans = new BanList();
  const first = await setup(3, { bans, maxLength: 100 });
  const tried: string[] = [];
  const refuseLong = (length: number) => (span: { server?: { peerId: string } }) => {
    tried.push(span.server!.peerId);
    return span.server!.peerId === "A" && length > 50
      ? Promise.reject(refusal("A"))
      : Promise.resolve("done");
  };
  assert.equal(await withRetries(first.s, first.router, 0, refuseLong(100)), "done");
  assert.deepEqual(tried.splice(0), ["A", "B"]);
  // another session of the client, as long: straight to B (before: A again, one round trip each)
  const again = await setup(3, { bans, maxLength: 100 });
  assert.equal(await withRetries(again.s, again.router, 0, refuseLong(100)), "done");
  assert.deepEqual(tried.splice(0), ["B"]);
  assert.equal(again.s.stats.failures, 0);
  // a shorter one still goes to A, the faster server; A is banned for nobody
  const short = await setup(3, { bans, maxLength: 40 });
  assert.equal(await withRetries(short.s, short.router, 0, refuseLong(40)), "done");
  assert.deepEqual(tried.splice(0), ["A"]);
  assert.deepEqual(bans.banned(), []);
  // where A alone covers the blocks it is asked again, and its refusal ends the session at once
  const alone = await setup(5, { bans, maxLength: 100, servers: ["A"] });
  const err = await withRetries(alone.s, alone.router, 0, refuseLong(100)).then(() => undefined, (e) => e);
  assert.ok(
    err instanceof SwarmError && err.code === "SESSION_FAILED" && err.details.refused === true,
    String(err),
  );
  assert.deepEqual(tried.splice(0), ["A"]);
});

Deno.test("withRetries: when every server refuses the request, SESSION_FAILED says so at once; nobody is banned", async () => {
  const { s, router } = await setup(5);
  const tried: string[] = [];
  const err = await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    return Promise.reject(refusal(span.server!.peerId));
  }).then(() => undefined, (e) => e);
  assert.ok(err instanceof SwarmError && err.code === "SESSION_FAILED", String(err));
  assert.match(err.message, /the servers refused the request/);
  assert.match(err.hint, /shorter prompt/);
  assert.equal(err.details.refused, true);
  assert.equal(err.details.lastCode, "TOO_LONG");
  assert.deepEqual(tried, ["A", "B"], "each server once, not the retries' worth");
  assert.deepEqual(s.bans.banned(), []);
});

Deno.test("withRetries: a refusal by one server and a failure of another is a server failure, retried as such", async () => {
  const { s, router } = await setup(2);
  const err = await withRetries(s, router, 0, (span) =>
    Promise.reject(
      span.server!.peerId === "A" ? refusal("A") : new SwarmError("TIMEOUT", "B did not answer"),
    )).then(() => undefined, (e) => e);
  assert.ok(err instanceof SwarmError && err.code === "SESSION_FAILED", String(err));
  assert.doesNotMatch(err.message, /refused the request/, "B never refused anything");
  assert.equal(err.details.refused, undefined);
  assert.ok(s.bans.isBanned("B"));
  assert.equal(s.bans.isBanned("A"), false);
});

Deno.test("withRetries: a server's BAD_FRAME is its failure: banned, as any error frame", async () => {
  const { s, router } = await setup();
  const tried: string[] = [];
  const r = await withRetries(s, router, 0, (span) => {
    tried.push(span.server!.peerId);
    return tried.length === 1
      ? Promise.reject(
        new SwarmError("BAD_FRAME", "server replied BAD_FRAME: garbage", { details: { remote: true } }),
      )
      : Promise.resolve("done");
  });
  assert.equal(r, "done");
  assert.ok(s.bans.isBanned("A"), "a server that refuses everything is not spared");
});
