import assert from "node:assert/strict";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator } from "../testing/mod.ts";
import { ApiHandler } from "./api_handler.ts";
import type { CoverageSummary, NodeStatus } from "./types.ts";

const FULL: CoverageSummary = { totalBlocks: 6, coveredBlocks: 6, complete: true, servers: 3 };

function setup(status: NodeStatus) {
  const gen = new FakeGenerator();
  const current = { status };
  const handler = new ApiHandler({
    generator: gen,
    metrics: new Metrics(),
    status: { status: () => current.status },
  });
  const health = async () => {
    const r = await handler.app.request("/health");
    return { code: r.status, retryAfter: r.headers.get("retry-after"), body: await r.json() };
  };
  return { gen, handler, current, health };
}

Deno.test("/health is 200 ok only while this node can generate: ready and the swarm covers the model", async () => {
  const { health } = setup({ coverage: FULL, state: "online" });
  const h = await health();
  assert.equal(h.code, 200);
  assert.equal(h.body.status, "ok");
  assert.equal(h.body.mode, "pipeline");
  assert.equal(h.body.model, "test-org/tiny-model");
  assert.equal(h.body.reason, undefined);
});

Deno.test("/health while the node starts: 503 loading with the phase as the reason, gateway fields kept", async () => {
  const { gen, health, current } = setup({ starting: "loading blocks 2:4", state: "joining" });
  gen.ready = false;
  let h = await health();
  assert.equal(h.code, 503);
  assert.equal(h.retryAfter, "1");
  assert.equal(h.body.status, "loading");
  assert.match(h.body.reason, /loading blocks 2:4/);
  assert.equal(h.body.mode, "pipeline");
  assert.equal(h.body.model, "test-org/tiny-model");
  assert.equal(h.body.state, "joining");
  current.status = {};
  h = await health();
  assert.equal(h.code, 503);
  assert.match(h.body.reason, /loading/);
});

Deno.test("/health when the swarm does not cover the model: 503 degraded naming what is covered", async () => {
  const { health, current } = setup({
    state: "online",
    coverage: { totalBlocks: 24, coveredBlocks: 2, complete: false, servers: 1 },
  });
  const h = await health();
  assert.equal(h.code, 503);
  assert.equal(h.body.status, "degraded");
  assert.match(h.body.reason, /2 of 24 blocks/);
  assert.deepEqual(h.body.swarm, { total_blocks: 24, covered_blocks: 2, complete: false, servers: 1 });
  current.status = { state: "online", coverage: FULL };
  assert.equal((await health()).code, 200, "ok again once the swarm covers the model");
});

Deno.test("/health while draining: 503 stopping", async () => {
  const { health, handler } = setup({ coverage: FULL });
  await handler.drain(0);
  const h = await health();
  assert.equal(h.code, 503);
  assert.equal(h.body.status, "stopping");
  assert.match(h.body.reason, /shutting down/);
});
