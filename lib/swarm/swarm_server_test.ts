import assert from "node:assert/strict";
import { FakeBackend, fakeHidden } from "../runtime/fake_backend.ts";
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
