/**
 * Two private peers, each behind its own router (tests/helpers/netns_bed.ts): a server and a
 * client that can reach each other only through a public relay at first. Behind routers that keep
 * source ports (Linux MASQUERADE's default, most home routers) the session is hole punched (TCP
 * simultaneous open) and its steps leave the relay; behind a router that randomizes ports
 * (MASQUERADE --random-fully: symmetric and carrier-grade NATs) the punch fails and the session
 * stays relayed. Both generate the single-process output.
 * Skipped, with the reason printed, only where the machine cannot host network namespaces.
 */
import assert from "node:assert/strict";
import { BedSwarm, localReference } from "./helpers/nat_bed_swarm.ts";
import { netnsAvailable, NetnsBed } from "./helpers/netns_bed.ts";

const bed = await netnsAvailable();
if (!bed.ok) console.warn(`%cNAT tests skipped: ${bed.reason}`, "color: yellow");

const PROMPT = "two routers";
const N = 8;

Deno.test({
  name: "NAT: two private peers punch through port-keeping routers; a port-randomizing router stays relayed",
  ignore: !bed.ok,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const expected = await localReference(PROMPT, N);
    const net = await NetnsBed.create({
      publics: ["relay1", "relay2"],
      routers: [{ name: "home1" }, { name: "home2" }, { name: "cgnat", nat: "random" }],
      privates: [
        { name: "server", router: "home1" },
        { name: "client", router: "home2" },
        { name: "mobile", router: "cgnat" },
      ],
    });
    const swarm = new BedSwarm(net);
    try {
      const relay1 = await swarm.start("relay1", { role: "relay" });
      const relay2 = await swarm.start("relay2", { role: "relay", initialPeers: [relay1.addr(net)] });
      const server = await swarm.start("server", {
        role: "server",
        blockIndices: { start: 0, end: 9 },
        initialPeers: [relay1.addr(net), relay2.addr(net)],
      });
      await server.waitFor("record", (e) => e.usingRelay === true, 20_000, "a relayed record");
      const paths = (e: Record<string, unknown>) => (e.paths as Array<{ path: string }>).map((p) => p.path);

      const client = await swarm.start("client", { role: "client", initialPeers: [relay1.addr(net)] });
      const punched = await swarm.generate(client, { prompt: PROMPT, maxNewTokens: N, servers: 1 });
      assert.deepEqual(punched.tokens, expected);
      assert.deepEqual(paths(punched), ["punched"]);

      const mobile = await swarm.start("mobile", { role: "client", initialPeers: [relay1.addr(net)] });
      const relayed = await swarm.generate(mobile, { prompt: PROMPT, maxNewTokens: N, servers: 1 });
      assert.deepEqual(relayed.tokens, expected);
      assert.deepEqual(paths(relayed), ["relayed"]);
    } finally {
      await swarm.stop();
      await net.destroy();
    }
  },
});
