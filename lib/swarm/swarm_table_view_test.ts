import assert from "node:assert/strict";
import type { SwarmRecord } from "../wire/mod.ts";
import type { TableEntry } from "./swarm_table.ts";
import { formatSwarmTableView, ranges, swarmTableView } from "./swarm_table_view.ts";
import { testRecord } from "../testing/mod.ts";

const NOW = 1_800_000_000_000;

function entry(peerId: string, patch: Partial<SwarmRecord>): TableEntry {
  const record = testRecord(peerId, NOW, { model: "m/a", cacheTokensLeft: 4096, ...patch });
  return {
    record,
    signed: { payload: "", signature: "" },
    firstSeen: NOW - 5_000,
    wireBytes: 0,
    local: true,
  };
}

const entries = [
  entry("PeerB", { start: 4, end: 8, throughput: 5, totalBlocks: 12, startedAt: NOW - 3_600_000 }),
  entry("PeerA", { start: 0, end: 6, wallet: "0x" + "ab".repeat(20) }),
  entry("PeerC", { start: 8, end: 10, state: "joining" }),
  entry("PeerD", { start: 0, end: 12, state: "offline" }),
  entry("PeerE", { model: "m/b", start: 0, end: 2 }),
];

Deno.test("swarm table view: servers, per-block coverage, uncovered blocks incl. the announced tail", () => {
  const view = swarmTableView(entries, { now: NOW, models: ["m/a"] });
  assert.equal(view.models.length, 1);
  const m = view.models[0];
  assert.equal(m.totalBlocks, 12, "announced total, beyond the last span end");
  assert.ok(m.totalBlocksAnnounced);
  assert.deepEqual(m.servers.map((s) => s.peerId), ["PeerA", "PeerD", "PeerB", "PeerC"]);
  assert.deepEqual(m.coverage.map((c) => c.servers), [1, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0]);
  assert.deepEqual(m.coverage.map((c) => c.throughput), [10, 10, 10, 10, 15, 15, 5, 5, 0, 0, 0, 0]);
  assert.deepEqual(m.coverage.map((c) => c.joining), [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
  assert.deepEqual(m.uncovered, [8, 9, 10, 11]);
  assert.equal(m.complete, false);
  const b = m.servers.find((s) => s.peerId === "PeerB")!;
  assert.equal(b.ageSeconds, 3600, "age from startedAt");
  assert.equal(m.servers.find((s) => s.peerId === "PeerA")!.ageSeconds, 5, "age from first seen");
  // JSON-ready
  assert.deepEqual(JSON.parse(JSON.stringify(view)), view);
});

Deno.test("swarm table view: all models by default; unannounced size falls back to the last span end", () => {
  const view = swarmTableView(entries, { now: NOW });
  assert.deepEqual(view.models.map((m) => m.model), ["m/a", "m/b"]);
  const b = view.models[1];
  assert.equal(b.totalBlocks, 2);
  assert.equal(b.totalBlocksAnnounced, false);
  assert.ok(b.complete);
});

Deno.test("swarm table view: plain text marks blocks nobody serves; colour only when asked", () => {
  const view = swarmTableView(entries, { now: NOW, models: ["m/a"] });
  const plain = formatSwarmTableView(view);
  const text = plain.join("\n");
  assert.ok(!text.includes("\x1b["), "no ANSI codes in plain text");
  assert.match(text, /4 of 12 blocks NOT SERVED: 8-11/);
  for (
    const col of ["PEER ID", "SPAN", "STATE", "TOK/S", "CACHE LEFT", "WEIGHTS", "VERSION", "WALLET", "AGE"]
  ) {
    assert.ok(text.includes(col), col);
  }
  assert.match(text, /PeerB\s+4:8\s+online\s+5\.0\s+4096\s+fp32\s+0\.1\.0\s+-\s+1h/);
  assert.match(
    text,
    new RegExp(`PeerA\\s+0:6\\s+online\\s+10\\.0\\s+4096\\s+fp32\\s+0\\.1\\.0\\s+0x${"ab".repeat(20)}\\s+5s`),
  );
  const blockLines = plain.filter((l) => /^\s+block\s+\d+ /.test(l));
  assert.equal(blockLines.length, 12);
  assert.deepEqual(
    blockLines.map((l) => l.includes("NOT SERVED")),
    [false, false, false, false, false, false, false, false, true, true, true, true],
  );
  assert.match(blockLines[4], /█{30} 2 server\(s\) 15\.0 tok\/s/, "the best-covered block has a full bar");
  assert.match(blockLines[8], /·{30} 0 server\(s\) 0\.0 tok\/s \(\+1 joining\)/);
  const colored = formatSwarmTableView(view, { color: true }).join("\n");
  assert.ok(colored.includes("\x1b[1;31m"), "uncovered blocks in red on a terminal");
  assert.deepEqual(formatSwarmTableView({ takenAt: "", models: [] }), ["no servers in the swarm table"]);
});

Deno.test("swarm table view: ranges", () => {
  assert.equal(ranges([0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
  assert.equal(ranges([]), "");
});

Deno.test("swarm table view: a 64-block model prints runs of equally covered blocks on one line", () => {
  const rec = (peerId: string, start: number, end: number) =>
    entry(peerId, { model: "qwen/qwen3-32b", start, end, throughput: 10, totalBlocks: 64 });
  const view = swarmTableView([rec("P1", 0, 24), rec("P2", 16, 40), rec("P3", 44, 64)], { now: NOW });
  const m = view.models[0];
  assert.equal(m.coverage.length, 64);
  assert.deepEqual(m.uncovered, [40, 41, 42, 43]);
  const lines = formatSwarmTableView(view).filter((l) => /^\s+blocks? /.test(l));
  assert.deepEqual(lines.map((l) => /^\s+blocks (\d+(?:-\d+)?)/.exec(l)![1]), [
    "0-15",
    "16-23",
    "24-39",
    "40-43",
    "44-63",
  ]);
  assert.match(lines[1], /█{30} 2 server\(s\) 20\.0 tok\/s$/);
  assert.match(lines[3], /·{30} 0 server\(s\) 0\.0 tok\/s {2}<- NOT SERVED$/);
});

Deno.test("swarm table view: whether the internet reaches each server, and through how many relays", () => {
  const relayed = [
    "/ip4/198.19.1.2/tcp/31330",
    "/ip4/198.18.0.11/tcp/31330/p2p/12D3KooWRelayA/p2p-circuit",
    "/ip4/198.18.0.12/tcp/31330/p2p/12D3KooWRelayB/p2p-circuit",
  ];
  const view = swarmTableView([
    entry("PeerP", { start: 0, end: 4, reachability: "private", usingRelay: true, addrs: relayed }),
    entry("PeerQ", { start: 4, end: 8, reachability: "public", relay: true }),
    entry("PeerR", { start: 8, end: 12 }),
  ], { now: NOW });
  const [p, q, r] = view.models[0].servers;
  assert.deepEqual([p.reachability, p.relays, p.relaying], ["private", 2, false]);
  assert.deepEqual([q.reachability, q.relays, q.relaying], ["public", 0, true]);
  assert.deepEqual(
    [r.reachability, r.relays, r.relaying],
    [null, 0, false],
    "an older server's record says nothing",
  );
  const text = formatSwarmTableView(view).join("\n");
  assert.match(text, /REACHABLE/);
  assert.match(text, /PeerP .*private via 2 relays/);
  assert.match(text, /PeerQ .*public, relays/);
});
