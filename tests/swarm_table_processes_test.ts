/**
 * Acceptance (issue 5): 5 server processes + 1 observer on 127.0.0.1. The observer's table
 * is complete within 2 s of joining via one bootstrap peer; a state change reaches every
 * node within 5 s; a SIGKILLed server disappears after its (shortened) TTL; a gracefully
 * stopped one at once. Servers started one after another on a 24-block model with 6 blocks
 * each cover all 24 blocks.
 */
import assert from "node:assert/strict";
import { SwarmProcess } from "./helpers/swarm_process.ts";

const TTL = 4000;
const PERIOD = 1000;

Deno.test({
  name: "swarm processes: table dissemination, state changes, kill and graceful stop, block coverage",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const procs: SwarmProcess[] = [];
    try {
      const servers: SwarmProcess[] = [];
      let bootstrap: string[] = [];
      for (let i = 0; i < 5; i++) {
        const p = new SwarmProcess({
          role: "server",
          initialPeers: bootstrap,
          totalBlocks: 24,
          numBlocks: 6,
          announcePeriodMs: PERIOD,
          ttlMs: TTL,
          throughput: 10,
        });
        procs.push(p);
        servers.push(p);
        await p.waitFor((e) => e.event === "ready", 30_000, `server ${i} ready`);
        if (i === 0) bootstrap = [p.addrs[0]];
        // the next one starts once this one's record reached the bootstrap (sequential starters)
        await servers[0].waitFor(
          (e) => e.event === "table" && Object.keys(e.servers as object).length === i + 1,
          5000,
          `bootstrap sees ${i + 1} servers`,
        );
      }
      // block selection across processes: the first four tile the model, all 24 covered
      const spans = servers.map((s) =>
        s.events.find((e) => e.event === "ready")!.span as { start: number; end: number }
      );
      assert.deepEqual(spans.slice(0, 4).map((s) => s.start), [0, 6, 12, 18]);
      const covered = new Array(24).fill(0);
      for (const s of spans) for (let b = s.start; b < s.end; b++) covered[b]++;
      assert.ok(covered.every((c) => c > 0), `coverage ${covered}`);

      // observer joins via ONE bootstrap peer: complete table within 2 s of joining
      const observer = new SwarmProcess({ role: "observer", initialPeers: bootstrap });
      procs.push(observer);
      const ready = await observer.waitFor((e) => e.event === "ready", 30_000, "observer ready");
      assert.equal(ready.records, 5, "the table is complete when start() returns");
      const complete = await observer.waitFor(
        (e) =>
          e.event === "table" &&
          Object.values(e.servers as object).filter((s) => s === "online").length === 5,
        2000,
        "observer table complete",
      );
      assert.ok(complete);

      // a state change reaches all (4 other servers + observer) within 5 s
      const changed = servers[3].peerId;
      await servers[3].send("announce joining");
      const everyoneElse = [...servers.filter((s) => s !== servers[3]), observer];
      await Promise.all(everyoneElse.map((p, i) =>
        p.waitFor(
          (e) => e.event === "table" && (e.servers as Record<string, string>)[changed] === "joining",
          5000,
          `state change at node ${i}`,
        )
      ));

      // SIGKILL: disappears after its TTL (not before a period has passed, by at most TTL + slack)
      const killed = servers[4].peerId;
      const killedAt = performance.now();
      servers[4].kill("SIGKILL");
      const gone = await observer.waitFor(
        (e) => e.event === "table" && (e.at as number) > killedAt && !(killed in (e.servers as object)),
        TTL + 3000,
        "killed server expiring",
      );
      assert.ok(gone);

      // graceful stop: offline at once (well before the TTL)
      const stopped = servers[2].peerId;
      const stopAt = performance.now();
      servers[2].kill("SIGTERM");
      await observer.waitFor(
        (e) =>
          e.event === "table" && (e.at as number) > stopAt &&
          (e.servers as Record<string, string>)[stopped] === "offline",
        TTL / 2,
        "graceful stop seen as offline",
      );
      const status = await servers[2].done;
      assert.equal(status.code, 0, "graceful stop exits 0");
    } finally {
      await Promise.all(procs.map((p) => p.close()));
    }
  },
});
