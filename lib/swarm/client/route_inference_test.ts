import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import {
  describeRoute,
  formatBlocks,
  missingBlocks,
  planInference,
  routeInference,
  usableServers,
  versionCompatible,
} from "./route_inference.ts";
import type { RouteServer, RouteSpan } from "./types.ts";

const MODEL = "org/tiny";
function srv(peerId: string, start: number, end: number, extra: Partial<RouteServer> = {}): RouteServer {
  return { peerId, model: MODEL, start, end, state: "online", throughput: 100, inferenceRps: 1000, ...extra };
}
const base = { model: MODEL, maxLength: 128 };
const peers = (r: RouteSpan[]) => r.map((s) => `${s.server.peerId}:${s.start}-${s.end}`);

/** Contiguous, covers [start,end), and every server is left only at the end of its span or the route. */
function assertValid(route: RouteSpan[], start: number, end: number): void {
  assert.equal(route[0].start, start);
  assert.equal(route[route.length - 1].end, end);
  for (let i = 0; i < route.length; i++) {
    const s = route[i];
    assert.ok(s.server.start <= s.start && s.end <= s.server.end, `${peers(route)}: inside the server span`);
    if (i > 0) assert.equal(s.start, route[i - 1].end, "contiguous");
    if (i < route.length - 1) {
      assert.equal(s.end, s.server.end, `${peers(route)}: left ${s.server.peerId} mid-span`);
    }
  }
}

Deno.test("routing chooses the lower-latency chain", () => {
  const servers = [srv("A", 0, 4), srv("B", 4, 8), srv("C", 0, 4), srv("D", 4, 8)];
  const rtt: Record<string, number> = { A: 200, B: 200, C: 10, D: 12 };
  const route = routeInference(servers, { ...base, start: 0, end: 8, clientRttMs: (p) => rtt[p] });
  assert.deepEqual(peers(route), ["C:0-4", "D:4-8"]);
  // server→server pings (nextPings) are used for hand-offs
  const withPings = [
    srv("A", 0, 4, { nextPings: { B: 2, D: 400 } }),
    srv("C", 0, 4, { nextPings: { B: 400, D: 400 } }),
    srv("B", 4, 8),
    srv("D", 4, 8),
  ];
  const r2 = routeInference(withPings, { ...base, start: 0, end: 8, clientRttMs: () => 20 });
  assert.deepEqual(peers(r2), ["A:0-4", "B:4-8"]);
  // one long fast span beats two hops when compute is equal
  const r3 = routeInference([srv("A", 0, 4), srv("B", 4, 8), srv("L", 0, 8)], { ...base, start: 0, end: 8 });
  assert.deepEqual(peers(r3), ["L:0-8"]);
});

Deno.test("routing prefers faster compute when latency is equal", () => {
  const servers = [srv("slow", 0, 8, { inferenceRps: 10 }), srv("f1", 0, 4), srv("f2", 4, 8)];
  assert.deepEqual(peers(routeInference(servers, { ...base, start: 0, end: 8 })), ["f1:0-4", "f2:4-8"]);
  // unknown inferenceRps falls back to the default (300/s)
  const plan = planInference([srv("x", 0, 2, { inferenceRps: undefined })], { ...base, start: 0, end: 2 });
  assert.ok(Math.abs(plan.costMs - (150 + 18 + 2 * (1000 / 300) + 150)) < 1e-6, `cost ${plan.costMs}`);
});

Deno.test("routing avoids servers without enough cache", () => {
  const servers = [
    srv("nocache", 0, 8, { cacheTokensLeft: 100 }),
    srv("a", 0, 4, { cacheTokensLeft: 10_000, inferenceRps: 200 }),
    srv("b", 4, 8, { cacheTokensLeft: 10_000, inferenceRps: 200 }),
  ];
  // needs 128 × 8 = 1024 tokens on one 8-block server; 512 per 4-block server
  assert.deepEqual(peers(routeInference(servers, { ...base, start: 0, end: 8 })), ["a:0-4", "b:4-8"]);
  // but when it is the only way, it is still used (a penalty, not a filter)
  assert.deepEqual(peers(routeInference([servers[0]], { ...base, start: 0, end: 8 })), ["nocache:0-8"]);
  // batch multiplies the need
  const r = routeInference(
    [
      srv("big", 0, 8, { cacheTokensLeft: 1024 }),
      srv("c", 0, 8, { cacheTokensLeft: 4096, inferenceRps: 50 }),
    ],
    { ...base, start: 0, end: 8, batch: 4 },
  );
  assert.deepEqual(peers(r), ["c:0-8"]);
});

Deno.test("routing respects span ends (never leaves a server mid-span)", () => {
  // A is fast but short-ish; C overlaps; B is long and slow. Switching A→C at block 2 would be cheapest
  // if it were allowed; it is not.
  const servers = [
    srv("A", 0, 4, { inferenceRps: 10_000 }),
    srv("B", 0, 8, { inferenceRps: 100 }),
    srv("C", 2, 8, { inferenceRps: 10_000 }),
    srv("D", 3, 6, { inferenceRps: 50 }),
  ];
  const route = routeInference(servers, { ...base, start: 0, end: 8, clientRttMs: () => 2 });
  assertValid(route, 0, 8);
  assert.deepEqual(peers(route), ["A:0-4", "C:4-8"]);
  // random tables: every route is valid
  let seed = 1;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let trial = 0; trial < 200; trial++) {
    const n = 3 + Math.floor(rnd() * 6);
    const table: RouteServer[] = [srv("cover", 0, 12, { inferenceRps: 1 + rnd() * 1000 })];
    for (let i = 0; i < n; i++) {
      const s = Math.floor(rnd() * 11);
      table.push(srv(`s${i}`, s, s + 1 + Math.floor(rnd() * (12 - s)), { inferenceRps: 1 + rnd() * 5000 }));
    }
    const a = Math.floor(rnd() * 11), b = a + 1 + Math.floor(rnd() * (12 - a - 1 + 1));
    const r = routeInference(table, {
      ...base,
      start: a,
      end: Math.min(12, b),
      clientRttMs: () => rnd() * 50,
    });
    assertValid(r, a, Math.min(12, b));
  }
});

Deno.test("a sub-range route (failover) starts mid-span and truncates the last server", () => {
  const servers = [srv("A", 0, 6), srv("B", 2, 10)];
  const route = routeInference(servers, { ...base, start: 3, end: 5 });
  assert.equal(route.length, 1);
  assert.equal(route[0].start, 3);
  assert.equal(route[0].end, 5);
  assert.match(describeRoute(route), /^3:5 via [AB]$/);
});

Deno.test("MISSING_BLOCKS lists exactly the uncovered blocks", () => {
  const servers = [srv("A", 0, 3), srv("B", 6, 9), srv("off", 3, 5, { state: "offline" })];
  assert.deepEqual(missingBlocks(usableServers(servers, { model: MODEL }), 0, 10), [3, 4, 5, 9]);
  assert.throws(
    () => routeInference(servers, { ...base, start: 0, end: 10 }),
    (e) =>
      e instanceof SwarmError && e.code === "MISSING_BLOCKS" &&
      /blocks 3\.\.5, 9 of org\/tiny/.test(e.message) &&
      JSON.stringify(e.details.blocks) === "[3,4,5,9]" && /--block-indices 3:10/.test(e.hint),
  );
  assert.equal(formatBlocks([0, 2, 3, 4, 7]), "0, 2..4, 7");
  // banned servers count as missing
  assert.throws(
    () => routeInference([srv("A", 0, 2)], { ...base, start: 0, end: 2, banned: (p) => p === "A" }),
    /block(s)? 0\.\.1/,
  );
  assert.throws(
    () => routeInference([srv("A", 0, 2)], { ...base, start: 2, end: 2 }),
    /cannot route blocks \[2, 2\)/,
  );
});

Deno.test("filters: model, state, weights, version, banned, empty spans", () => {
  const servers = [
    srv("ok", 0, 4, { weights: "fp32", version: "1.2.0" }),
    srv("int8", 0, 4, { weights: "int8", version: "1.2.0" }),
    srv("old", 0, 4, { weights: "fp32", version: "1.1.9" }),
    srv("major", 0, 4, { weights: "fp32", version: "2.0.0" }),
    srv("joining", 0, 4, { state: "joining", weights: "fp32", version: "1.2.0" }),
    srv("other", 0, 4, { model: "org/other", weights: "fp32", version: "1.2.0" }),
    srv("empty", 2, 2, { weights: "fp32", version: "1.2.0" }),
    srv("banned", 0, 4, { weights: "fp32", version: "1.3.0" }),
  ];
  const use = usableServers(servers, {
    model: MODEL,
    weights: "fp32",
    version: "1.2.0",
    banned: (p) => p === "banned",
  });
  assert.deepEqual(use.map((s) => s.peerId), ["ok"]);
  assert.equal(versionCompatible("1.2", "v1.10.0"), true);
  assert.equal(versionCompatible("1.2.3", undefined), false);
  assert.equal(versionCompatible("1.2.3", "1.2.3-beta"), true);
});

Deno.test("routing prices a server behind a relay an extra leg", () => {
  // equal servers for blocks 0..4, one reached only through a relay
  const servers = [srv("nat", 0, 4, { usingRelay: true }), srv("pub", 0, 4)];
  // unknown RTTs: the relayed one costs twice the assumed delay plus the relay's hop
  const plan = (s: RouteServer[], rtt?: Record<string, number>) =>
    planInference(s, { ...base, start: 0, end: 4, clientRttMs: rtt ? (p) => rtt[p] : undefined });
  assert.deepEqual(peers(plan(servers).spans), ["pub:0-4"]);
  const alone = (x: RouteServer) => plan([x]).costMs;
  const extra = alone(servers[0]) - alone(servers[1]);
  // twice the 150 ms default delay each way (in and out) instead of once, plus 18 ms for the relay's hop
  assert.equal(Math.round(extra), 150 * 2 + 18);
  // a measured RTT already went through the relay: only the relay's hop is added
  const measured = { nat: 40, pub: 40 };
  const m = plan([servers[0]], measured).costMs - plan([servers[1]], measured).costMs;
  assert.equal(Math.round(m), 18);
  // a relayed server much faster than the public one still wins
  const fast = [
    srv("nat", 0, 4, { usingRelay: true, inferenceRps: 100_000 }),
    srv("pub", 0, 4, { inferenceRps: 10 }),
  ];
  assert.deepEqual(peers(plan(fast, measured).spans), ["nat:0-4"]);
});
