import assert from "node:assert/strict";
import { multiaddr } from "@multiformats/multiaddr";
import { waitFor } from "../../tests/helpers/wait_for.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import { relayOf } from "./relay_manager.ts";
import { RELAY_HOP_PROTOCOL, type RelayLimits } from "./nat_services.ts";
import { SwarmPeer } from "./swarm_peer.ts";
import type { RelayMode } from "./relay_manager.ts";

Deno.test("relayOf: the relay of a relayed address, nothing for a direct one", () => {
  assert.equal(relayOf("/ip4/198.18.0.11/tcp/4001/p2p/12D3KooWA/p2p-circuit/p2p/12D3KooWB"), "12D3KooWA");
  assert.equal(relayOf("/ip4/198.18.0.11/tcp/4001/p2p/12D3KooWA"), undefined);
});

async function peer(
  o: { relay?: RelayMode; limits?: RelayLimits; initial?: string[]; listen?: boolean } = {},
) {
  const p = new SwarmPeer({
    privateKey: (await ephemeralIdentity()).privateKey,
    host: "127.0.0.1",
    port: 0,
    dht: false,
    noListen: o.listen === false,
    initialPeers: o.initial,
    nat: { relayService: o.relay ?? "off", reservations: 1 },
    relayLimits: o.limits,
  });
  await p.start();
  return p;
}

const LIMITS: RelayLimits = { maxReservations: 4, maxCircuits: 1, circuitBytes: 1 << 20, circuitMs: 60_000 };

Deno.test({
  name:
    "relay manager: behind NAT it reserves a slot on a relay; clients reach it through it; public, it lets go",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const relay = await peer({ relay: "on", limits: LIMITS });
    const addr = `${relay.multiaddrs()[0]}`;
    const priv = await peer({ initial: [addr] });
    const client = await peer({ listen: false });
    const other = await peer({ listen: false });
    try {
      assert.equal(relay.natStatus()!.relaying, true);
      assert.equal(priv.natStatus()!.relaying, false, "RELAY_SERVICE off");
      // (on loopback nobody sees an internet address: reachability stays unknown; decide by hand)
      await priv.nat.relays.update("private");
      await waitFor(() => priv.natStatus()!.relays.includes(relay.peerId), { what: "a relay slot" });
      const circuit = priv.multiaddrs().find((a) => a.includes("/p2p-circuit"))!;
      assert.equal(relayOf(circuit), relay.peerId);

      // a client reaches the private node through the relay ("limited" connections run plumise's
      // protocols too): the table pull answers
      assert.deepEqual(await client.client(circuit).pullTable(), []);
      const conn = client.node.getConnections().find((c) => c.remotePeer.toString() === priv.peerId)!;
      assert.ok(conn.remoteAddr.toString().includes("/p2p-circuit"));
      await waitFor(() => relay.natStatus()!.circuits === 1, { what: "one relayed circuit" });

      // RELAY_MAX_CIRCUITS: the second circuit is refused
      await assert.rejects(other.node.dial(multiaddr(circuit)));

      // reachable after all: the relay slot is given up
      await priv.nat.relays.update("public");
      assert.equal(priv.natStatus()!.relays.length, 0);
      assert.ok(!priv.multiaddrs().some((a) => a.includes("/p2p-circuit")));
    } finally {
      await Promise.all([other.stop(), client.stop(), priv.stop(), relay.stop()]);
    }
  },
});

Deno.test({
  name: "relay manager: in auto mode a node relays only while it is reachable from the internet",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const relay = await peer({ relay: "auto" });
    try {
      const offers = async () =>
        (await relay.node.peerStore.get(relay.node.peerId)).protocols.includes(RELAY_HOP_PROTOCOL);
      assert.equal(relay.natStatus()!.relaying, false);
      assert.equal(await offers(), false, "the hop protocol is not offered while unknown");
      await relay.nat.relays.update("public");
      assert.equal(relay.natStatus()!.relaying, true);
      assert.equal(await offers(), true);
      await relay.nat.relays.update("private");
      assert.equal(relay.natStatus()!.relaying, false);
    } finally {
      await relay.stop();
    }
  },
});
