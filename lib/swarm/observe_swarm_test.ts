import assert from "node:assert/strict";
import { ConfigError, SwarmError } from "../errors.ts";
import { observeSwarm } from "./observe_swarm.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import { SwarmPeer } from "./swarm_peer.ts";
import { testPeer } from "../testing/mod.ts";

Deno.test("observeSwarm: no bootstrap peer is a clear error", async () => {
  await assert.rejects(observeSwarm({ initialPeers: [] }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, "a usage error: exit 2");
    assert.equal(e.code, "NO_INITIAL_PEERS");
    assert.match(e.hint ?? "", /--initial-peers/);
    return true;
  });
  await assert.rejects(
    observeSwarm({ initialPeers: ["/ip4/127.0.0.1/tcp/1"] }),
    (e: unknown) => e instanceof ConfigError && /no \/p2p\/<peer id>/.test(e.message),
  );
});

Deno.test({
  name: "observeSwarm: pulls the table from a live peer; a dead bootstrap peer alone is NO_PEER_ANSWERED",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const host = new SwarmPeer({
      privateKey: (await ephemeralIdentity()).privateKey,
      host: "127.0.0.1",
      port: 0,
      dht: false,
    });
    await host.start();
    let addr = "";
    try {
      addr = host.multiaddrs()[0];
      const a = await testPeer();
      const b = await testPeer();
      await host.publish(await a.sign({ model: "m/x", start: 0, end: 4 }), false);
      await host.publish(await b.sign({ model: "m/y", start: 2, end: 6, state: "joining" }), false);
      const snap = await observeSwarm({ initialPeers: [addr], requestMs: 3000 });
      assert.equal(snap.initialPeersReached, 1);
      assert.deepEqual(snap.entries.map((e) => e.record.peerId).sort(), [a.peerId, b.peerId].sort());
      assert.deepEqual(snap.entries.map((e) => e.record.model).sort(), ["m/x", "m/y"]);
    } finally {
      await host.stop();
    }
    // the same address once the node is gone: nobody answers
    await assert.rejects(observeSwarm({ initialPeers: [addr], requestMs: 2000 }), (e: unknown) => {
      assert.ok(e instanceof SwarmError);
      assert.equal(e.code, "NO_PEER_ANSWERED");
      assert.ok(e.message.includes(addr), "names the peer");
      return true;
    });
  },
});
