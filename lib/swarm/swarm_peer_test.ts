import assert from "node:assert/strict";
import { ephemeralIdentity } from "./peer_identity.ts";
import { INFO_PROTOCOL } from "./protocol_ids.ts";
import { SwarmPeer } from "./swarm_peer.ts";

const peer = async () =>
  new SwarmPeer({
    privateKey: (await ephemeralIdentity()).privateKey,
    host: "127.0.0.1",
    port: 0,
    dht: false,
  });

Deno.test({
  name:
    "swarm peer: a protocol the other peer does not serve is refused with UnsupportedProtocolError, and the connection stays usable",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await peer(), client = await peer();
    try {
      await server.start();
      await client.start();
      // a timeout far beyond the test's run: the failure must come from the refusal itself
      const c = client.client(server.multiaddrs()[0], { openMs: 600_000 });
      await assert.rejects(c.info(), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.equal(e.name, "UnsupportedProtocolError");
        assert.match(e.message, /could not negotiate \/plumise\/info\/1\.0\.0/);
        return true;
      });
      // serve it now: the same client (same connection) gets an answer
      await server.handle(INFO_PROTOCOL, async (ch) => {
        await ch.read();
        await ch.write({ type: "error", code: "UNKNOWN_MODEL", message: "served now" });
        await ch.close();
      });
      await assert.rejects(c.info(), /served now/);
    } finally {
      await client.stop();
      await server.stop();
    }
  },
});
