/**
 * NAT scenarios on real networking (tests/helpers/netns_bed.ts: network namespaces, a router with
 * iptables MASQUERADE that drops unsolicited inbound traffic, addresses in 198.18.0.0/15 only):
 * a private server between two public ones — its reachability decided from the public peers, its
 * record carrying relayed addresses, `plumise doctor`'s check saying private, a generation through
 * it equal to the single-process output (hole punched, and relayed), and the relay it is reached
 * through restarting mid-generation without changing the output.
 * Skipped, with the reason printed, only where the machine cannot host network namespaces.
 */
import assert from "node:assert/strict";
import { INFERENCE_PROTOCOL } from "../lib/swarm/protocol_ids.ts";
import { relayOf } from "../lib/swarm/relay_manager.ts";
import { BedSwarm, localReference } from "./helpers/nat_bed_swarm.ts";
import { netnsAvailable, NetnsBed } from "./helpers/netns_bed.ts";

const bed = await netnsAvailable();
if (!bed.ok) console.warn(`%cNAT tests skipped: ${bed.reason}`, "color: yellow");

const PROMPT = "the swarm says";
const N = 12;

Deno.test({
  name:
    "NAT: a private server between two public ones is found private, relayed, punched and survives its relay",
  ignore: !bed.ok,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const expected = await localReference(PROMPT, N);
    const net = await NetnsBed.create({
      publics: ["pub1", "pub2", "relay1", "relay2", "client"],
      routers: [{ name: "router" }],
      privates: [{ name: "priv", router: "router" }],
    });
    const swarm = new BedSwarm(net);
    const dir = await Deno.makeTempDir();
    try {
      // block servers that do not relay, and two relays that serve no blocks (one is restarted below)
      const off = { relayService: "off" as const };
      const pub1 = await swarm.start("pub1", {
        role: "server",
        blockIndices: { start: 0, end: 3 },
        nat: off,
      });
      const relayCfg = (i: number) => ({
        role: "relay" as const,
        initialPeers: [pub1.addr(net)],
        identityPath: `${dir}/relay${i}.key`,
      });
      const relay1 = await swarm.start("relay1", relayCfg(1));
      const relay2 = await swarm.start("relay2", relayCfg(2));
      const pub2 = await swarm.start("pub2", {
        role: "server",
        blockIndices: { start: 6, end: 9 },
        initialPeers: [pub1.addr(net)],
        nat: off,
      });
      const priv = await swarm.start("priv", {
        role: "server",
        blockIndices: { start: 3, end: 6 },
        initialPeers: [pub1.addr(net), relay1.addr(net), relay2.addr(net)],
      });

      // reachability: decided from the public peers' dial-backs
      const natOf = (n: typeof priv, status: string) =>
        n.waitFor("nat", (e) => e.status === status, 20_000, `reachability ${status}`);
      const privNat = await natOf(priv, "private");
      assert.equal(privNat.observedHost, net.host("router").ip);
      await natOf(pub1, "public");
      await natOf(pub2, "public");

      // the record: relayed addresses through both relays
      const rec = await priv.waitFor(
        "record",
        (e) => (e.addrs as string[]).filter((a) => a.includes("/p2p-circuit")).length === 2,
        20_000,
        "a record with two relayed addresses",
      );
      assert.equal(rec.usingRelay, true);
      assert.equal(rec.reachability, "private");
      const relays = (rec.addrs as string[]).map(relayOf).filter(Boolean).sort();
      assert.deepEqual(relays, [relay1.peerId, relay2.peerId].sort());

      // `plumise doctor`'s check, run behind the router: private, from the two public servers
      const probe = await swarm.start("priv", {
        role: "probe",
        initialPeers: [pub1.addr(net), pub2.addr(net)],
        port: 4100,
      });
      const verdict = probe.last("probe")!;
      assert.equal(verdict.status, "private", JSON.stringify(verdict));
      assert.equal(verdict.confirmations, 2);
      assert.equal(verdict.observedHost, net.host("router").ip);
      const line = verdict.doctor as { ok: boolean; detail: string };
      assert.equal(line.ok, true, "behind NAT is no failure: the node serves through relays");
      assert.match(line.detail, /^reachable from the internet: no — behind NAT .*serving through relays/);

      // a public client: the private server's session is punched (it connects back), the
      // public ones take their direct paths; the output is the single-process output
      const punching = await swarm.start("client", { role: "client", initialPeers: [pub1.addr(net)] });
      const a = await swarm.generate(punching, { prompt: PROMPT, maxNewTokens: N, servers: 3 });
      assert.deepEqual(a.tokens, expected);
      const pathOf = (e: typeof a, peer: string) =>
        (e.paths as Array<{ peer: string; path: string }>).filter((p) => p.peer === peer).map((p) => p.path);
      assert.deepEqual(pathOf(a, priv.peerId), ["punched"]);
      assert.deepEqual(pathOf(a, pub1.peerId), ["direct"]);

      // without hole punching the steps go through the relay; mid-generation the relay carrying
      // them is restarted: the client reopens the server through its relays and replays
      const relayed = await swarm.start("client", {
        role: "client",
        initialPeers: [pub1.addr(net)],
        nat: { holePunch: false },
      });
      let restarted = "";
      const b = await swarm.generate(
        relayed,
        { prompt: PROMPT, maxNewTokens: N, servers: 3, pauseAt: 6 },
        async () => {
          const paused = relayed.last("paused")!;
          // the connection carrying the session's inference stream
          const conns = paused.conns as Array<{ peer: string; addr: string; protocols: string[] }>;
          const conn = conns.find((c) => c.peer === priv.peerId && c.protocols.includes(INFERENCE_PROTOCOL));
          assert.ok(
            conn?.addr.includes("/p2p-circuit"),
            `the session reaches the private server by ${conn?.addr}`,
          );
          const victim = [relay1, relay2].find((r) => r.peerId === relayOf(conn!.addr))!;
          restarted = victim.peerId;
          await swarm.kill(victim);
          await swarm.start(victim.host, victim.config);
        },
      );
      assert.deepEqual(b.tokens, expected);
      // reopened once (found failed at its next step, or already closed when the step began), replayed
      assert.deepEqual(pathOf(b, priv.peerId), ["relayed", "relayed"]);
      // the private server holds a slot on the restarted relay again
      await priv.waitFor(
        "nat",
        (e) => (e.relays as string[]).includes(restarted) && (e.relays as string[]).length === 2,
        30_000,
        "a slot on the restarted relay",
      );
    } finally {
      await swarm.stop();
      await net.destroy();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
