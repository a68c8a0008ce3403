/**
 * Starts a libp2p node of plumise with `--upnp` on 127.0.0.1, lets its router search run, stops
 * it and prints {"event":"done", addrs} (run by tests/nat_upnp_test.ts inside a namespace with
 * nothing but loopback, so the search cannot leave it).
 * @module
 */
import { createLibp2pNode } from "../../lib/swarm/libp2p_node.ts";
import { ephemeralIdentity } from "../../lib/swarm/peer_identity.ts";

const node = await createLibp2pNode({
  privateKey: (await ephemeralIdentity()).privateKey,
  host: "127.0.0.1",
  port: 0,
  dht: false,
  upnp: true,
});
await node.start();
const addrs = node.getMultiaddrs().map(String);
const upnp = (node.services as { upnp?: { portMappingClient?: unknown } }).upnp;
await node.stop();
console.log(JSON.stringify({ event: "done", addrs, upnp: upnp?.portMappingClient !== undefined }));
Deno.exit(0);
