/**
 * A record flood against a swarm server, over real libp2p on loopback: an attacker connects to
 * the bootstrap server and pushes 1000 records of fresh keys, each about 14 KB (the record cap is
 * 16 KB, a table reply's header 4 MiB), all claiming to serve the same blocks as the legitimate
 * server that joins afterwards. The bootstrap must stay useful: its table bounded, its table
 * replies within the cap, nothing of the flood passed on, and a client that connects through it
 * must route through the legitimate server. See docs/protocol.md ("Records").
 */
import assert from "node:assert/strict";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { FakeBackend, FakeHead, FakeTokenizer } from "../lib/testing/mod.ts";
import { connectSwarm } from "../lib/swarm/client/connect_swarm.ts";
import { ephemeralIdentity } from "../lib/swarm/peer_identity.ts";
import { signRecord } from "../lib/swarm/record_signer.ts";
import { SwarmPeer } from "../lib/swarm/swarm_peer.ts";
import { SwarmServer } from "../lib/swarm/swarm_server.ts";
import { NEW_PER_SOURCE_BURST, NEW_PER_SOURCE_PER_MINUTE } from "../lib/swarm/swarm_table.ts";
import { Metrics } from "../lib/util/metrics.ts";
import type { SignedRecordWire, SwarmRecord } from "../lib/wire/mod.ts";
import { encodeFrame } from "../lib/wire/mod.ts";
import { waitFor } from "./helpers/wait_for.ts";

const MODEL = "fake/model";
const H = 16;
const BLOCKS = 8;
const FLOOD = 1000;
const figures = { throughput: 10, inferenceRps: 100, forwardRps: 1000, networkRps: 500 };

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/** A record of a fresh key, about 14 KB, claiming blocks 4..8 with a huge throughput. */
async function fakeRecord(i: number): Promise<SignedRecordWire> {
  const key = await generateKeyPair("Ed25519");
  const peerId = peerIdFromPrivateKey(key).toString();
  const label = (c: string) => c.repeat(63);
  const now = Date.now();
  const record: SwarmRecord = {
    peerId,
    addrs: Array.from(
      { length: 32 },
      (_, a) => `/dns4/${label("a")}.${label("b")}.${label("c")}.${label("d")}.${label("e")}.x${a}/tcp/1`,
    ),
    model: MODEL,
    start: 4,
    end: 8,
    state: "online",
    throughput: 1e9,
    inferenceRps: 1e9,
    forwardRps: 1e9,
    networkRps: 1e9,
    cacheTokensLeft: 1_000_000,
    weights: "fp32",
    version: "0.1.0",
    wallet: null,
    usingRelay: false,
    nextPings: Object.fromEntries(
      Array.from({ length: 64 }, (_, p) => [`${"1".repeat(44)}${B58[p % 58]}${B58[(p * 7 + i) % 58]}`, 1]),
    ),
    seq: now,
    expiresAt: now + 600_000,
  };
  return await signRecord(record, key);
}

async function server(span: { start: number; end: number }, initialPeers: string[], extra = {}) {
  const s = new SwarmServer({
    privateKey: (await ephemeralIdentity()).privateKey,
    host: "127.0.0.1",
    port: 0,
    initialPeers,
    model: MODEL,
    weights: "fp32",
    version: "0.1.0",
    metrics: new Metrics(),
    announcePeriodMs: 1000,
    dht: false,
    ...extra,
  });
  await s.start();
  await s.announce("joining", span);
  const runtime = new FakeBackend({
    modelId: MODEL,
    numBlocks: BLOCKS,
    hiddenSize: H,
    ...span,
    direct: { host: "127.0.0.1", port: 0 },
  });
  await runtime.start();
  await s.serve(runtime, figures);
  return { s, runtime };
}

Deno.test({
  name:
    "swarm flood: 1000 big records of fresh keys, then a legitimate server joins and a client routes through it",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const fakes: SignedRecordWire[] = [];
    for (let i = 0; i < FLOOD; i++) fakes.push(await fakeRecord(i));
    assert.ok(fakes.every((f) => f.payload.length > 13_000), "records of about 14 KB");

    const stops: Array<() => Promise<void>> = [];
    try {
      const a = await server({ start: 0, end: 4 }, [], { maxRecords: 200 });
      stops.push(() => a.s.stop(), () => a.runtime.stop());
      const boot = [a.s.peer.multiaddrs()[0]];
      // a bystander connected to the bootstrap while the flood goes on: what reaches it was re-flooded
      const bystander = new SwarmPeer({
        privateKey: (await ephemeralIdentity()).privateKey,
        host: "127.0.0.1",
        port: 0,
        initialPeers: boot,
        dht: false,
      });
      await bystander.start();
      stops.push(() => bystander.stop());

      const attacker = new SwarmPeer({
        privateKey: (await ephemeralIdentity()).privateKey,
        noListen: true,
        initialPeers: boot,
        dht: false,
      });
      await attacker.start();
      stops.push(() => attacker.stop());
      for (const f of fakes) await attacker.publish(f, false);

      // the bootstrap's table is bounded: one source adds at most NEW_PER_SOURCE_BURST new peers at
      // once (then NEW_PER_SOURCE_PER_MINUTE a minute), and a full table refuses what ranks no
      // higher than its lowest entry
      // (a record of the flood whose probe failed ranks lowest: a later one of the flood may take its place)
      const rejectedCount = () => [...a.s.table.rejected.values()].reduce((x, y) => x + y, 0);
      const handled = () => a.s.table.size - 1 + a.s.table.evicted + rejectedCount();
      await waitFor(() => handled() === FLOOD, { what: "the bootstrap handled every pushed record" });
      assert.ok(a.s.table.size <= 200, `bootstrap table holds ${a.s.table.size} records`);
      const rejected = Object.fromEntries(a.s.table.rejected);
      assert.equal(a.s.table.size, 200, "the bootstrap and 199 records of the flood");
      // (the budget refills while the flood goes on: a few more were tried)
      assert.ok(
        rejected.RECORD_RATE >= FLOOD - NEW_PER_SOURCE_BURST - NEW_PER_SOURCE_PER_MINUTE,
        JSON.stringify(rejected),
      );
      const evictedByFlood = a.s.table.evicted;
      // and a pull of it fits a reply
      const pulled = await bystander.client(a.s.peerId).pullTable(MODEL);
      const reply = encodeFrame({ type: "table", records: pulled });
      assert.ok(reply.byteLength < 4 * 1024 * 1024, `a table reply of ${reply.byteLength} bytes`);
      const fakeIds = new Set(fakes.map((f) => (JSON.parse(f.payload) as SwarmRecord).peerId));
      const isFake = (p: string) => fakeIds.has(p);
      assert.equal(
        bystander.table.entries().filter((e) => isFake(e.record.peerId)).length,
        0,
        "nothing of the flood was passed on to the bystander",
      );

      // a legitimate server joins through the bootstrap
      const b = await server({ start: 4, end: 8 }, boot);
      stops.push(() => b.s.stop(), () => b.runtime.stop());
      await waitFor(() => a.s.table.get(b.s.peerId)?.record.state === "online", {
        what: "the legitimate server in the bootstrap's table",
        timeoutMs: 10_000,
      });
      assert.equal(
        a.s.table.evicted,
        evictedByFlood + 1,
        "the legitimate server took the place of one record of the flood",
      );

      // a client connects through the bootstrap and generates through both servers
      const client = await connectSwarm({
        model: MODEL,
        head: new FakeHead(H),
        tokenizer: new FakeTokenizer(),
        numBlocks: BLOCKS,
        initialPeers: boot,
        tableRefreshMs: 0,
        connectTimeoutMs: 10_000,
      });
      stops.push(() => client.stop());
      const servers = client.swarmTable.servers(MODEL).map((r) => r.peerId);
      assert.deepEqual(servers.filter(isFake), [], "no record of the flood in the client's table");
      assert.ok(servers.includes(b.s.peerId), "the client knows the legitimate server");
      const out = await client.generate("abc", { maxNewTokens: 3, eosTokenIds: [] }).complete();
      assert.equal(out.tokenIds.length, 3);
      assert.ok(b.runtime.stats.steps > 0, "the client's steps went through the legitimate server");
    } finally {
      for (const stop of stops.reverse()) await stop().catch(() => {});
    }
  },
});
