import assert from "node:assert/strict";
import { checkReachability } from "./check_reachability.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import { SwarmPeer } from "./swarm_peer.ts";

Deno.test({
  name:
    "checkReachability: peers that see this node only on loopback cannot say; it answers unknown with why",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const peers = await Promise.all([0, 1].map(async () => {
      const p = new SwarmPeer({
        privateKey: (await ephemeralIdentity()).privateKey,
        host: "127.0.0.1",
        port: 0,
        dht: false,
      });
      await p.start();
      return p;
    }));
    try {
      const r = await checkReachability({
        host: "127.0.0.1",
        initialPeers: peers.map((p) => p.multiaddrs()[0]),
        timeoutMs: 1_500,
      });
      assert.equal(r.status, "unknown");
      assert.equal(r.peersReached, 2);
      assert.match(r.reason, /no peer on the internet/);
      // (the private and public verdicts through real NAT: tests/nat_swarm_test.ts)
    } finally {
      await Promise.all(peers.map((p) => p.stop()));
    }
  },
});
