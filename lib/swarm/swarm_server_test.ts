import assert from "node:assert/strict";
import { FakeBackend, fakeHidden } from "../testing/mod.ts";
import { Metrics } from "../util/metrics.ts";
import { SwarmError } from "../errors.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import { SwarmPeer } from "./swarm_peer.ts";
import { SwarmServer } from "./swarm_server.ts";

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const figures = { throughput: 10, inferenceRps: 100, forwardRps: 1000, networkRps: 500 };

Deno.test({
  name: "swarm server: servers over libp2p announce, choose spans, serve sessions; observer sees all",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const servers: SwarmServer[] = [];
    const runtimes: FakeBackend[] = [];
    let bootstrap: string[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const s = new SwarmServer({
          privateKey: (await ephemeralIdentity()).privateKey,
          host: "127.0.0.1",
          port: 0,
          initialPeers: bootstrap,
          model: "fake/model",
          weights: "fp32",
          version: "test",
          metrics: new Metrics(),
          announcePeriodMs: 500,
          dht: false,
        });
        servers.push(s);
        await s.start();
        if (i === 0) bootstrap = [s.peer.multiaddrs()[0]];
        const span = s.chooseSpan(12, 4);
        await s.announce("joining", span);
        const rt = new FakeBackend({
          modelId: "fake/model",
          numBlocks: 12,
          start: span.start,
          end: span.end,
        });
        await rt.start();
        runtimes.push(rt);
        await s.serve(rt, figures);
      }
      assert.deepEqual(servers.map((s) => s.span), [{ start: 0, end: 4 }, { start: 4, end: 8 }, {
        start: 8,
        end: 12,
      }]);

      const observer = new SwarmPeer({
        privateKey: (await ephemeralIdentity()).privateKey,
        noListen: true,
        initialPeers: bootstrap,
        dht: false,
      });
      await observer.start();
      try {
        assert.equal(observer.table.servers("fake/model").length, 3, "full table right after joining");
        assert.ok(observer.table.coverage("fake/model", 12).every((c) => c === 10));

        // nextPings: server 0 (0:4) pings the servers a route can go on to (covering block 4)
        await servers[0].measureNextPings();
        await servers[0].announce("online");
        await waitFor(
          () => Object.keys(observer.table.get(servers[0].peerId)?.record.nextPings ?? {}).length > 0,
          "server 0's nextPings announced",
        );
        const pings = observer.table.get(servers[0].peerId)!.record.nextPings;
        assert.deepEqual(Object.keys(pings), [servers[1].peerId]);
        assert.ok(Number.isFinite(pings[servers[1].peerId]) && pings[servers[1].peerId] >= 0);

        // inference through server 1 equals running its blocks locally
        const c = observer.client(servers[1].peerId);
        const info = await c.info();
        assert.equal(info.live.sessions, 0);
        const s = await c.openInference({
          sessionId: "x",
          model: "fake/model",
          start: 4,
          end: 8,
          maxLength: 16,
          batch: 1,
        });
        const local = new FakeBackend({ modelId: "fake/model", numBlocks: 12, start: 4, end: 8 });
        await local.start();
        const ref = await local.openSession({ start: 4, end: 8, maxLength: 16, batch: 1 });
        for (const t of [4, 1, 1]) {
          const x = fakeHidden(1, t, 16, t);
          assert.deepEqual((await s.step(x)).hidden.data, (await ref.step(x)).data);
        }
        await s.close();
        await assert.rejects(
          c.openInference({ sessionId: "y", model: "fake/model", start: 0, end: 4, maxLength: 4, batch: 1 }),
          (e: unknown) => e instanceof SwarmError && e.code === "SPAN_NOT_SERVED",
        );

        // graceful stop: offline reaches the observer
        await servers[2].stop();
        await waitFor(() => observer.table.servers("fake/model").length === 2, "offline announcement");
        assert.equal(observer.table.coverage("fake/model", 12)[10], 0);
      } finally {
        await observer.stop();
      }
    } finally {
      for (const s of servers) await s.stop();
      for (const r of runtimes) await r.stop();
    }
  },
});

/** A server of "fake/model" on loopback, rebalancing only when a test calls for it. */
async function testServer(
  initialPeers: string[],
  o: { pinned?: boolean; settleMs?: number } = {},
): Promise<SwarmServer> {
  return new SwarmServer({
    privateKey: (await ephemeralIdentity()).privateKey,
    host: "127.0.0.1",
    port: 0,
    initialPeers,
    model: "fake/model",
    weights: "fp32",
    version: "test",
    metrics: new Metrics(),
    dht: false,
    pinned: o.pinned ?? false,
    rebalance: { settleMs: o.settleMs ?? 300, delayMs: () => 1e9 }, // checks are run by hand
  });
}

async function rebalanceSwarm(pinnedD = false, settleMs = 300) {
  const servers: SwarmServer[] = [];
  const runtimes: FakeBackend[] = [];
  let bootstrap: string[] = [];
  // A and B on 0:4 (throughput 10 each), D alone on 4:8 (throughput 1): lopsided
  for (const [start, tp] of [[4, 1], [0, 10], [0, 10]]) {
    const s = await testServer(bootstrap, { pinned: pinnedD && start === 4, settleMs });
    servers.push(s);
    await s.start();
    if (!bootstrap.length) bootstrap = [s.peer.multiaddrs()[0]];
    const rt = new FakeBackend({ modelId: "fake/model", numBlocks: 8, start, end: start + 4 });
    await rt.start();
    runtimes.push(rt);
    await s.serve(rt, { ...figures, throughput: tp });
  }
  await waitFor(
    () =>
      servers.every((s) => s.table.servers("fake/model").filter((r) => r.state === "online").length === 3),
    "every server sees 3 online",
  );
  const mover = (s: SwarmServer, fail?: string) => async (span: { start: number; end: number }) => {
    if (fail) throw new SwarmError("INTERNAL", fail);
    const rt = new FakeBackend({ modelId: "fake/model", numBlocks: 8, ...span });
    await rt.start();
    runtimes.push(rt);
    await s.serve(rt);
  };
  const cleanup = async () => {
    for (const s of servers) await s.stop();
    for (const r of runtimes) await r.stop();
  };
  return { servers, mover, cleanup, runtimes, bootstrap };
}

Deno.test({
  name: "swarm server rebalance: no listener / pinned stay; a failed move serves the old span again",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { servers: [d, a], mover, cleanup } = await rebalanceSwarm(true);
    try {
      assert.match((await a.rebalanceOnce()).reason, /no move listener/);
      d.onMove(mover(d));
      assert.match((await d.rebalanceOnce()).reason, /pinned/);
      const off = a.onMove(mover(a, "disk full"));
      const failed = await a.rebalanceOnce();
      assert.equal(failed.moved, false);
      assert.match(failed.reason, /move failed: disk full/);
      assert.deepEqual(a.span, { start: 0, end: 4 });
      assert.equal(a.state, "online");
      await waitFor(() => {
        const r = d.table.get(a.peerId)?.record;
        return r?.state === "online" && r.start === 0;
      }, "the others see a back online on 0:4");
      off();
      assert.match((await a.rebalanceOnce()).reason, /no move listener/);
      // a listener that does not serve the new span is a failed move too
      a.onMove(() => {});
      assert.match((await a.rebalanceOnce()).reason, /did not serve blocks 4:8/);
      assert.deepEqual(a.span, { start: 0, end: 4 });
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "swarm server rebalance: no decision while another server has announced an intent to move",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { servers: [_d, a, b], mover, cleanup } = await rebalanceSwarm();
    try {
      a.onMove(mover(a));
      assert.equal(b.rebalanceDecision(8).move, true, "lopsided: b alone would move");
      const moving = a.rebalanceOnce();
      await waitFor(
        () => b.table.get(a.peerId)?.record.movingTo?.start === 4,
        "b sees a's intent to move to 4:8",
      );
      const during = b.rebalanceDecision(8);
      assert.equal(during.move, false);
      assert.match(during.reason, /is moving to 4:8/);
      assert.equal((await moving).moved, true);
      await waitFor(() => {
        const r = b.table.get(a.peerId)?.record;
        return r?.state === "online" && r.start === 4 && !r.movingTo;
      }, "b sees a online on 4:8");
      assert.equal(b.rebalanceDecision(8).move, false, "balanced after a's move: b stays");
    } finally {
      await cleanup();
    }
  },
});

Deno.test({
  name: "swarm server rebalance: a move that the settled table no longer supports is dropped",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { servers: [_d, a], mover, cleanup, runtimes, bootstrap } = await rebalanceSwarm(false, 1500);
    // a server that joins 4:8 while a settles its intent to move there
    const e = await testServer(bootstrap);
    try {
      await e.start();
      a.onMove(mover(a));
      assert.equal(a.rebalanceDecision(8).move, true, "lopsided: a would move to 4:8");
      const moving = a.rebalanceOnce();
      const rt = new FakeBackend({ modelId: "fake/model", numBlocks: 8, start: 4, end: 8 });
      await rt.start();
      runtimes.push(rt);
      await e.serve(rt, { ...figures, throughput: 10 });
      await waitFor(() => a.table.get(e.peerId)?.record.state === "online", "a sees e online on 4:8");
      const r = await moving;
      assert.equal(r.moved, false);
      assert.match(r.reason, /no longer pays off/);
      assert.deepEqual(a.span, { start: 0, end: 4 });
      await waitFor(() => {
        const rec = e.table.get(a.peerId)?.record;
        return rec?.state === "online" && rec.start === 0 && !rec.movingTo;
      }, "a announced online on 0:4 again, without its intent");
    } finally {
      await e.stop();
      await cleanup();
    }
  },
});

Deno.test({
  name: "swarm server rebalance: simultaneous movers both stay; a lone mover moves and serves the new span",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { servers: [d, a, b], mover, cleanup } = await rebalanceSwarm();
    try {
      a.onMove(mover(a));
      b.onMove(mover(b));
      // what clients see: every block always has an online server, during intents and the move
      const gaps: string[] = [];
      d.table.onChange(() => {
        const cov = new Array(8).fill(0);
        for (const r of d.table.servers("fake/model")) {
          if (r.state === "online") { for (let k = r.start; k < r.end; k++) cov[k]++; }
        }
        if (cov.includes(0)) gaps.push(cov.join(","));
      });
      // both decide on the same table: after the settle time each sees the other gone from 0:4
      const [ra, rb] = await Promise.all([a.rebalanceOnce(), b.rebalanceOnce()]);
      assert.deepEqual([ra.moved, rb.moved], [false, false]);
      assert.match(ra.reason, /would be uncovered/);
      assert.deepEqual([a.span, b.span], [{ start: 0, end: 4 }, { start: 0, end: 4 }]);
      await waitFor(
        () =>
          [a, d].every((s) =>
            s.table.servers("fake/model").filter((r) => r.state === "online" && r.start === 0 && !r.movingTo)
              .length === 2
          ),
        "both back online on 0:4, no intent left",
      );

      // an open session on a's old span ends when a moves; a then serves 4:8
      const client = d.peer.client(a.peerId);
      const old = await client.openInference({
        sessionId: "old",
        model: "fake/model",
        start: 0,
        end: 4,
        maxLength: 8,
        batch: 1,
      });
      const res = await a.rebalanceOnce();
      assert.equal(res.moved, true, res.reason);
      assert.deepEqual(a.span, { start: 4, end: 8 });
      await assert.rejects(old.step(fakeHidden(1, 1, 16, 1)));
      const s = await client.openInference({
        sessionId: "new",
        model: "fake/model",
        start: 4,
        end: 8,
        maxLength: 8,
        batch: 1,
      });
      const ref = new FakeBackend({ modelId: "fake/model", numBlocks: 8, start: 4, end: 8 });
      await ref.start();
      const refS = await ref.openSession({ start: 4, end: 8, maxLength: 8, batch: 1 });
      const x = fakeHidden(1, 2, 16, 3);
      assert.deepEqual((await s.step(x)).hidden.data, (await refS.step(x)).data);
      await s.close();
      await ref.stop();
      await waitFor(() => {
        const r = d.table.get(a.peerId)?.record;
        return r?.state === "online" && r.start === 4;
      }, "the others see a online on 4:8");
      // now balanced: nobody wants to move
      assert.equal((await b.rebalanceOnce()).moved, false);
      assert.deepEqual(gaps, [], "no block without an online server in d's table");
    } finally {
      await cleanup();
    }
  },
});
