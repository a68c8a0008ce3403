import assert from "node:assert/strict";
import { multiaddr } from "@multiformats/multiaddr";
import { SwarmError } from "../errors.ts";
import {
  createLibp2pNode,
  INBOUND_CONNECTIONS_PER_HOST_PER_SECOND,
  PING_STREAMS,
  type PlumiseLibp2p,
} from "./libp2p_node.ts";
import { ephemeralIdentity } from "./peer_identity.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";

/** A loopback node without the DHT: listening (a server) or not (a client). */
const node = async (listen: boolean) =>
  await createLibp2pNode({
    privateKey: (await ephemeralIdentity()).privateKey,
    host: "127.0.0.1",
    port: 0,
    dht: false,
    noListen: !listen,
  });

Deno.test({
  name:
    "a node takes 20 new connections from one host at once (libp2p's default refuses all past 5 a second)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert.ok(INBOUND_CONNECTIONS_PER_HOST_PER_SECOND >= 20);
    const server = await node(true);
    await server.start();
    const clients: PlumiseLibp2p[] = [];
    try {
      for (let i = 0; i < 20; i++) clients.push(await node(false));
      await Promise.all(clients.map((c) => c.start()));
      const addr = multiaddr(server.getMultiaddrs()[0].toString());
      // all at once, as clients behind one address starting together
      const dials = await Promise.allSettled(clients.map((c) => c.dial(addr)));
      const refused = dials.flatMap((d, i) => d.status === "rejected" ? [`client ${i}: ${d.reason}`] : []);
      assert.deepEqual(refused, []);
      // the server's side of each connection completes after the client's
      await waitFor(() => server.getConnections().length === 20, { what: "20 connections on the server" });
    } finally {
      await Promise.all(clients.map((c) => c.stop()));
      await server.stop();
    }
  },
});

Deno.test({
  name: "pings of the client and of libp2p's connection monitor at once leave the connection up",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assert.ok(PING_STREAMS >= 2);
    const server = await node(true), client = await node(false);
    await server.start();
    await client.start();
    try {
      const addr = multiaddr(server.getMultiaddrs()[0].toString());
      const conn = await client.dial(addr);
      const ping = (client.services as { ping: { ping(to: unknown): Promise<number> } }).ping;
      // the client's RTT ping and the monitor's ping stream (same protocol) on one connection at once:
      // with libp2p's limit of one outbound ping stream the second was refused, and the monitor then
      // aborted the connection
      const monitor = async () => {
        const s = await conn.newStream("/ipfs/ping/1.0.0", { runOnLimitedConnection: true });
        await s.close();
      };
      const both = await Promise.allSettled([ping.ping(addr), monitor(), ping.ping(addr), monitor()]);
      assert.deepEqual(
        both.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason)),
        [],
      );
      assert.equal(conn.status, "open");
    } finally {
      await client.stop();
      await server.stop();
    }
  },
});

Deno.test({
  name: "a swarm port in use is SWARM_PORT_IN_USE in one line, without libp2p's stack",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (taken.addr as Deno.NetAddr).port;
      let node: Awaited<ReturnType<typeof createLibp2pNode>> | undefined;
      const err = await createLibp2pNode({
        privateKey: (await ephemeralIdentity()).privateKey,
        host: "127.0.0.1",
        port,
        dht: false,
      }).then(async (n) => {
        node = n;
        await n.start();
      }).then(() => undefined, (e) => e);
      await node?.stop();
      // before: LIBP2P_CREATE_FAILED with eight lines of stack and advice about transportManager
      assert.ok(err instanceof SwarmError, String(err));
      assert.equal(err.code, "SWARM_PORT_IN_USE");
      assert.equal(err.message, `the swarm port 127.0.0.1:${port} is taken by another process`);
      assert.match(err.hint, /choose another PETALS_PORT/);
    } finally {
      taken.close();
    }
  },
});
