import assert from "node:assert/strict";
import { recordPayload, toBase64 } from "../wire/mod.ts";
import { SwarmTable } from "./swarm_table.ts";
import { testPeer } from "../testing/mod.ts";

Deno.test("swarm table: forged records are rejected (0 accepted), newer seq replaces older", async () => {
  let now = 1_700_000_000_000;
  const table = new SwarmTable({ now: () => now });
  const a = await testPeer(now);
  const b = await testPeer(now);
  assert.equal((await table.offer(await a.sign({ seq: 5 }))).accepted, true);

  const forged = [
    // valid signature of another key
    await (async () => {
      const payload = recordPayload(a.record({ seq: 6, start: 1 }));
      const sig = await b.privateKey.sign(new TextEncoder().encode("plumise-record/1\n" + payload));
      return { payload, signature: toBase64(sig) };
    })(),
    // replayed older seq, and the same seq again
    await a.sign({ seq: 4 }),
    await a.sign({ seq: 5, state: "offline" }),
    // expired
    await a.sign({ seq: 9, expiresAt: now - 1 }),
    // wrong peer id: b's key signs a record whose peerId field says a (signRecord refuses; do it by hand)
    await (async () => {
      const payload = recordPayload({ ...b.record({ seq: 7 }), peerId: a.peerId });
      const sig = await b.privateKey.sign(new TextEncoder().encode("plumise-record/1\n" + payload));
      return { payload, signature: toBase64(sig) };
    })(),
    // a ttl far in the future
    await a.sign({ seq: 10, expiresAt: now + 10 * 3_600_000 }),
  ];
  let accepted = 0;
  for (const f of forged) if ((await table.offer(f)).accepted) accepted++;
  assert.equal(accepted, 0);
  assert.deepEqual(Object.fromEntries(table.rejected), {
    RECORD_BAD_SIGNATURE: 2,
    RECORD_STALE: 2,
    RECORD_EXPIRED: 1,
    RECORD_TTL_TOO_LONG: 1,
  });
  assert.equal(table.get(a.peerId)?.record.seq, 5);

  const upd = await table.offer(await a.sign({ seq: 6, state: "joining" }));
  assert.ok(upd.accepted && upd.previous?.seq === 5);
  assert.equal(table.get(a.peerId)?.record.state, "joining");

  // expiry removes it
  now += 60_001;
  assert.equal(table.get(a.peerId), undefined);
  assert.equal(table.prune().length, 1);
  assert.equal(table.size, 0);
});

Deno.test("swarm table: servers, spans, coverage ignore offline servers and other models", async () => {
  const now = Date.now();
  const table = new SwarmTable();
  const peers = await Promise.all([0, 1, 2, 3].map(() => testPeer(now)));
  await table.offer(await peers[0].sign({ start: 0, end: 4, throughput: 10 }));
  await table.offer(await peers[1].sign({ start: 2, end: 6, throughput: 5, state: "joining" }));
  await table.offer(await peers[2].sign({ start: 0, end: 8, throughput: 7, state: "offline" }));
  await table.offer(await peers[3].sign({ start: 0, end: 8, throughput: 7, model: "other/model" }));
  const events: string[] = [];
  table.onChange((e) => events.push(`${e.type}:${e.record.state}`));
  assert.deepEqual(table.coverage("test/model", 8), [10, 10, 15, 15, 5, 5, 0, 0]);
  assert.equal(table.servers("test/model").length, 2);
  assert.deepEqual(table.spans("test/model").map((s) => [s.start, s.end]).sort(), [[0, 4], [2, 6]]);
  assert.deepEqual(table.models(), ["other/model", "test/model"]);
  assert.equal(table.signedRecords("test/model").length, 3);
  await table.offer(await peers[0].sign({ seq: 2, state: "offline" }));
  assert.deepEqual(events, ["upsert:offline"]);
  assert.deepEqual(table.coverage("test/model", 8), [0, 0, 5, 5, 5, 5, 0, 0]);
});

Deno.test("swarm table: a source adds a bounded number of new peers; own records, local ones and updates are free", async () => {
  let now = Date.now();
  const table = new SwarmTable({ now: () => now, newPerSourceBurst: 3, newPerSourcePerMinute: 60 });
  const peers = await Promise.all(Array.from({ length: 8 }, () => testPeer(now)));
  const relayed = { from: "relay", source: "203.0.113.9" };
  const codes = [];
  for (const p of peers.slice(0, 5)) {
    const r = await table.offer(await p.sign(), relayed);
    codes.push(r.accepted ? "ok" : r.code);
  }
  assert.deepEqual(codes, ["ok", "ok", "ok", "RECORD_RATE", "RECORD_RATE"]);
  // updates of known peers, a peer's own record, a local record, another source: all accepted
  assert.ok((await table.offer(await peers[0].sign({ seq: 2 }), relayed)).accepted);
  assert.ok(
    (await table.offer(await peers[5].sign(), { from: peers[5].peerId, source: relayed.source })).accepted,
  );
  assert.ok((await table.offer(await peers[6].sign())).accepted);
  assert.ok((await table.offer(await peers[7].sign(), { from: "other", source: "198.51.100.3" })).accepted);
  now += 1_000; // one more a second
  assert.ok((await table.offer(await peers[3].sign(), relayed)).accepted);
  assert.equal((await table.offer(await peers[4].sign(), relayed)).accepted, false);
});

Deno.test("swarm table: a stale record is refused before its signature is checked", async () => {
  const now = Date.now();
  const table = new SwarmTable({ now: () => now });
  const a = await testPeer(now);
  await table.offer(await a.sign({ seq: 5 }));
  const stale = { ...(await a.sign({ seq: 4 })), signature: "AAAA" };
  const r = await table.offer(stale, { from: "x", source: "1.2.3.4" });
  assert.ok(!r.accepted && r.code === "RECORD_STALE");
});

Deno.test("swarm table: a full table evicts only what ranks lower (unreachable, then by state); reachable servers stay", async () => {
  const now = Date.now();
  const table = new SwarmTable({ now: () => now, maxRecords: 3 });
  const p = await Promise.all(Array.from({ length: 7 }, () => testPeer(now)));
  const relayed = { from: "relay", source: "1.2.3.4" };
  const offer = async (
    i: number,
    patch: Parameters<typeof p[0]["sign"]>[0],
    from: typeof relayed | "own" = relayed,
  ) => {
    const r = await table.offer(
      await p[i].sign(patch),
      from === "own" ? { from: p[i].peerId, source: "5.6.7.8" } : from,
    );
    return r.accepted ? "ok" : r.code;
  };
  assert.equal(await offer(0, { state: "online" }, "own"), "ok"); // reachable
  assert.equal(await offer(1, { state: "offline" }), "ok");
  assert.equal(await offer(2, { state: "joining" }), "ok");
  // full: a relayed online record evicts the relayed offline one; a relayed offline one evicts nothing
  assert.equal(await offer(3, { state: "online" }), "ok");
  assert.equal(table.get(p[1].peerId), undefined);
  assert.equal(await offer(4, { state: "offline" }), "TABLE_FULL");
  assert.equal(await offer(5, { state: "joining" }), "TABLE_FULL", "no entry ranks below it");
  // a server that delivered its own record outranks every unreachable one: the joining one goes
  assert.equal(await offer(6, { state: "online" }, "own"), "ok");
  assert.equal(table.get(p[2].peerId), undefined);
  assert.equal(table.evicted, 2);
  // touch: a connection with a known peer makes it reachable (an event says so, once)
  const events: string[] = [];
  table.onChange((e) => events.push(`${e.type}:${e.record.peerId === p[3].peerId}`));
  assert.equal(table.reachable(p[3].peerId), false);
  table.touch(p[3].peerId);
  table.touch(p[3].peerId);
  assert.equal(table.reachable(p[3].peerId), true);
  assert.deepEqual(events, ["reachable:true"]);
});

Deno.test("swarm table: replies carry reachable peers only, online and newest first, within the byte budget", async () => {
  const now = Date.now();
  const table = new SwarmTable({ now: () => now });
  const p = await Promise.all(Array.from({ length: 5 }, () => testPeer(now)));
  await table.offer(await p[0].sign({ state: "offline", seq: 9 }));
  await table.offer(await p[1].sign({ state: "online", seq: 3 }));
  await table.offer(await p[2].sign({ state: "online", seq: 7 }));
  await table.offer(await p[3].sign({ state: "joining", seq: 8 }));
  await table.offer(await p[4].sign({ state: "online", seq: 99 }), { from: "relay", source: "1.2.3.4" });
  const ids = (rs: { payload: string }[]) => rs.map((r) => p.findIndex((x) => r.payload.includes(x.peerId)));
  assert.deepEqual(ids(table.signedRecords(undefined, { reachableOnly: true })), [2, 1, 3, 0]);
  assert.deepEqual(ids(table.signedRecords()), [4, 2, 1, 3, 0], "all of them without reachableOnly");
  const one = table.get(p[2].peerId)!.wireBytes;
  assert.deepEqual(ids(table.signedRecords(undefined, { reachableOnly: true, maxBytes: 2 * one + 2 })), [
    2,
    1,
  ]);
});

Deno.test("swarm table: among equals a full table evicts from the source holding the most; a failed probe goes first", async () => {
  const now = Date.now();
  const table = new SwarmTable({ now: () => now, maxRecords: 4 });
  const p = await Promise.all(Array.from({ length: 8 }, () => testPeer(now)));
  const flood = { from: "attacker", source: "9.9.9.9" }, relay = { from: "relay", source: "8.8.8.8" };
  const offer = async (i: number, from: typeof flood) => {
    const r = await table.offer(await p[i].sign(), from);
    return r.accepted ? "ok" : r.code;
  };
  assert.deepEqual([await offer(0, flood), await offer(1, flood), await offer(2, flood)], ["ok", "ok", "ok"]);
  assert.equal(await offer(3, relay), "ok");
  // full: the flooding source cannot push out the other source's record, nor its own for nothing
  assert.equal(await offer(4, flood), "TABLE_FULL");
  assert.ok(table.get(p[3].peerId));
  // another source with one entry takes the place of one of the flooder's three
  assert.equal(await offer(5, relay), "ok");
  assert.equal([0, 1, 2].filter((i) => table.get(p[i].peerId)).length, 2);
  // 2 against 2 now: neither gains on the other
  assert.equal(await offer(6, relay), "TABLE_FULL");
  // a peer a probe could not reach ranks below all: any unreachable record replaces it
  table.unreachable(p[3].peerId);
  assert.equal(await offer(7, flood), "ok");
  assert.equal(table.get(p[3].peerId), undefined);
});
