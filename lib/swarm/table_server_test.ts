import assert from "node:assert/strict";
import { DEFAULT_WIRE_LIMITS } from "../wire/mod.ts";
import { memoryFrameChannelPair } from "./frame_channel.ts";
import { SwarmTable } from "./swarm_table.ts";
import { TABLE_REQUESTS_IN_ALL, TABLE_REQUESTS_PER_PEER, TableServer } from "./table_server.ts";

async function ask(server: TableServer, peer: string) {
  const { a, b } = memoryFrameChannelPair();
  const served = server.serve(b, peer);
  await a.write({ type: "table_request" });
  const reply = await a.read();
  await served;
  return reply;
}

Deno.test("table server: a peer past its budget gets BUSY at once; others are still answered", async () => {
  let now = 0;
  const server = new TableServer(new SwarmTable(), DEFAULT_WIRE_LIMITS, { now: () => now });
  for (let i = 0; i < TABLE_REQUESTS_PER_PEER.burst; i++) {
    assert.equal((await ask(server, "p1"))?.type, "table");
  }
  const busy = await ask(server, "p1");
  assert.ok(busy?.type === "error" && busy.code === "BUSY", JSON.stringify(busy));
  assert.equal((await ask(server, "p2"))?.type, "table", "another peer is answered");
  now += 60_000 / TABLE_REQUESTS_PER_PEER.perMinute; // one request's worth back
  assert.equal((await ask(server, "p1"))?.type, "table");
});

Deno.test("table server: many peers together are bounded too", async () => {
  const server = new TableServer(new SwarmTable(), DEFAULT_WIRE_LIMITS, { now: () => 0 });
  const types: string[] = [];
  for (let i = 0; i < TABLE_REQUESTS_IN_ALL.burst + 5; i++) {
    types.push((await ask(server, `peer${i}`))?.type ?? "none");
  }
  assert.equal(types.filter((t) => t === "table").length, TABLE_REQUESTS_IN_ALL.burst);
  assert.equal(types.filter((t) => t === "error").length, 5);
});

Deno.test("table server: a request of another type is BAD_FRAME", async () => {
  const server = new TableServer(new SwarmTable(), DEFAULT_WIRE_LIMITS);
  const { a, b } = memoryFrameChannelPair();
  const served = server.serve(b, "p");
  await a.write({ type: "info_request" });
  const r = await a.read();
  await served;
  assert.ok(r?.type === "error" && r.code === "BAD_FRAME", JSON.stringify(r));
});
