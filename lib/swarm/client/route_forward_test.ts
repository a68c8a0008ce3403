import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { routeForward } from "./route_forward.ts";
import type { RouteServer } from "./types.ts";

const MODEL = "org/tiny";
const srv = (peerId: string, start: number, end: number, throughput: number): RouteServer => ({
  peerId,
  model: MODEL,
  start,
  end,
  state: "online",
  throughput,
});

Deno.test("forward routing picks spans at random, weighted by throughput, jumping to span ends", () => {
  const servers = [
    srv("fast", 0, 4, 300),
    srv("slow", 0, 4, 100),
    srv("tail", 4, 8, 50),
    srv("mid", 2, 8, 50),
  ];
  const counts: Record<string, number> = {};
  let seed = 42;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let i = 0; i < 4000; i++) {
    const route = routeForward(servers, { model: MODEL, start: 0, end: 8, random });
    assert.equal(route[0].start, 0);
    assert.equal(route[route.length - 1].end, 8);
    for (let j = 1; j < route.length; j++) assert.equal(route[j].start, route[j - 1].end);
    counts[route[0].server.peerId] = (counts[route[0].server.peerId] ?? 0) + 1;
  }
  const share = counts.fast / 4000;
  assert.ok(Math.abs(share - 0.75) < 0.03, `fast share ${share}`);
});

Deno.test("forward routing: zero throughput still usable; uncovered blocks → MISSING_BLOCKS", () => {
  const r = routeForward([srv("z", 0, 3, 0)], { model: MODEL, start: 1, end: 3 });
  assert.deepEqual(r.map((s) => [s.server.peerId, s.start, s.end]), [["z", 1, 3]]);
  assert.throws(
    () => routeForward([srv("a", 0, 2, 1)], { model: MODEL, start: 0, end: 4 }),
    (e) => e instanceof SwarmError && e.code === "MISSING_BLOCKS" && /2\.\.3/.test(e.message),
  );
});
