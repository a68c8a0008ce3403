/**
 * `plumise swarm` as a subprocess (the binary's permissions) against server processes on
 * 127.0.0.1: the table, the coverage with the blocks nobody serves, `--json`, `--model`, and
 * exit 1 with a clear message when no bootstrap peer is given or none answers.
 */
import assert from "node:assert/strict";
import { runPlumise } from "./helpers/cli.ts";
import { SwarmProcess } from "./helpers/swarm_process.ts";

Deno.test({
  name: "plumise swarm: table and coverage of live server processes (text and --json); errors exit 1",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const procs: SwarmProcess[] = [];
    try {
      const a = new SwarmProcess({ role: "server", totalBlocks: 12, blockIndices: { start: 0, end: 4 } });
      procs.push(a);
      await a.waitFor((e) => e.event === "ready", 30_000, "server a ready");
      const boot = a.addrs[0];
      const b = new SwarmProcess({
        role: "server",
        initialPeers: [boot],
        totalBlocks: 12,
        blockIndices: { start: 2, end: 8 },
        throughput: 30,
      });
      const other = new SwarmProcess({
        role: "server",
        initialPeers: [boot],
        model: "other/model",
        totalBlocks: 4,
        blockIndices: { start: 0, end: 4 },
      });
      procs.push(b, other);
      await Promise.all([b, other].map((p) => p.waitFor((e) => e.event === "ready", 30_000, "server ready")));
      await a.waitFor(
        (e) =>
          e.event === "table" &&
          Object.values(e.servers as object).filter((s) => s === "online").length === 2,
        5000,
        "bootstrap sees both fake/model servers",
      );

      // --json, model given: one object
      const json = await runPlumise(["swarm", "--json", "--initial-peers", boot, "--model", "fake/model"]);
      assert.equal(json.code, 0, json.stderr);
      const view = JSON.parse(json.stdout);
      assert.equal(view.initialPeersReached, 1);
      assert.deepEqual(view.models.map((m: { model: string }) => m.model), ["fake/model"]);
      const m = view.models[0];
      assert.equal(m.totalBlocks, 12);
      assert.deepEqual(
        m.servers.map((s: { peerId: string; start: number; end: number }) => [s.peerId, s.start, s.end]),
        [[a.peerId, 0, 4], [b.peerId, 2, 8]],
      );
      assert.deepEqual(m.servers.map((s: { state: string }) => s.state), ["online", "online"]);
      assert.deepEqual(m.servers.map((s: { throughput: number }) => s.throughput), [10, 30]);
      assert.deepEqual(
        m.coverage.map((c: { servers: number }) => c.servers),
        [1, 1, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0],
      );
      assert.deepEqual(m.uncovered, [8, 9, 10, 11]);
      assert.equal(m.complete, false);

      // plain text (not a terminal), all models, the bootstrap peer from the environment
      const text = await runPlumise(["swarm"], { env: { PETALS_INITIAL_PEERS: boot } });
      assert.equal(text.code, 0, text.stderr);
      assert.ok(!text.stdout.includes("\x1b["), "no colour codes when not a terminal");
      // a one-shot command's output is its answer: before, the peer's own info lines came too
      assert.doesNotMatch(text.stderr, /"level":"info"|swarm peer started/);
      const chatty = await runPlumise(["swarm"], { env: { PETALS_INITIAL_PEERS: boot, LOG_LEVEL: "info" } });
      assert.match(chatty.stderr, /swarm peer started/, "LOG_LEVEL still asks for them");
      assert.match(
        text.stdout,
        /model fake\/model: 2 server\(s\), 2 online; 4 of 12 blocks NOT SERVED: 8-11/,
      );
      assert.match(text.stdout, /model other\/model: 1 server\(s\), 1 online; all 4 blocks served/);
      assert.match(
        text.stdout,
        new RegExp(`${b.peerId}\\s+2:8\\s+online\\s+30\\.0\\s+\\d+\\s+fp32\\s+test\\s+-\\s+\\d+s`),
      );
      const notServed = text.stdout.split("\n").filter((l) => l.includes("<- NOT SERVED"));
      assert.deepEqual(notServed.map((l) => Number(/block\s+(\d+)/.exec(l)![1])), [8, 9, 10, 11]);

      // errors: no bootstrap peer; a bootstrap peer that does not answer
      const none = await runPlumise(["swarm"]);
      assert.equal(none.code, 2, "a usage error");
      assert.match(none.stderr, /NO_INITIAL_PEERS/);
      assert.match(none.stderr, /hint: .*--initial-peers/);
      await other.close();
      const deadAddr = other.addrs[0];
      const dead = await runPlumise(["swarm", "--initial-peers", deadAddr, "--timeout", "2000"]);
      assert.equal(dead.code, 1, dead.stdout + dead.stderr);
      assert.match(dead.stderr, /NO_PEER_ANSWERED/);
      assert.ok(dead.stderr.includes(deadAddr));
      const badAddr = await runPlumise(["swarm", "--initial-peers", "/ip4/127.0.0.1/tcp/1"]);
      assert.equal(badAddr.code, 2);
      assert.match(badAddr.stderr, /p2p/);
    } finally {
      for (const p of procs) await p.close();
    }
  },
});
