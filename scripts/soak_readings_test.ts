import assert from "node:assert/strict";
import {
  batchCounts,
  cpuMsPerToken,
  cpuSeconds,
  idleShare,
  machineTicks,
  meanBatch,
  rssGrowth,
  rssMiB,
  windowStats,
} from "./soak_readings.ts";

Deno.test("soak readings: growth is the largest end ÷ warm − 1 over the processes", () => {
  assert.equal(rssGrowth({ api: 400, s2: 200 }, { api: 420, s2: 230 }), 0.15);
  assert.equal(rssGrowth({ api: 400, s2: 200 }, { api: 380, s2: 190 }), -0.05);
});

Deno.test("soak readings: CPU time of a process grows by what it spins, per token", () => {
  const before = cpuSeconds(Deno.pid);
  const t0 = performance.now();
  let x = 0;
  while (performance.now() - t0 < 300) x += Math.sqrt(x + 1); // 0.3 s of one core
  const spent = cpuSeconds(Deno.pid) - before;
  assert.ok(x > 0);
  assert.ok(spent >= 0.2 && spent <= 1.5, `spun 0.3 s, /proc counted ${spent} s`);
  assert.deepEqual(cpuMsPerToken({ api: 10, s2: 4 }, { api: 12, s2: 4.5 }, 100), { api: 20, s2: 5 });
  assert.deepEqual(cpuMsPerToken({ api: 10 }, { api: 12 }, 0), { api: 0 });
  assert.throws(() => cpuSeconds(2 ** 22 + 12345), /No such file|not found/i);
});

Deno.test("soak readings: sessions per batch come from each server's /metrics between two readings", () => {
  const metrics = (count: number, sum: number) =>
    `# TYPE plumise_batch_sessions histogram\nplumise_batch_sessions_bucket{le="1"} 3\n` +
    `plumise_batch_sessions_sum ${sum}\nplumise_batch_sessions_count ${count}\nplumise_other_count 99\n`;
  const none = { filled: 0, inVain: 0, windowMs: 0 };
  assert.deepEqual(batchCounts(metrics(10, 25)), { count: 10, sum: 25, ...none });
  assert.deepEqual(batchCounts("# nothing batched yet\n"), { count: 0, sum: 0, ...none });
  assert.deepEqual(
    meanBatch(
      { api: { count: 10, sum: 25 }, s2: { count: 4, sum: 4 } },
      { api: { count: 14, sum: 37 }, s2: { count: 4, sum: 4 } },
    ),
    { api: 3, s2: 0 },
  );
});

Deno.test("soak readings: the servers' waits for their recent sessions, and the machine's idle share", () => {
  const text =
    `plumise_batch_windows_total{outcome="filled"} 30\nplumise_batch_windows_total{outcome="in_vain"} 10\n` +
    `plumise_batch_window_ms_total 120.5\nplumise_batch_sessions_count 7\nplumise_batch_sessions_sum 21\n`;
  const c = batchCounts(text);
  assert.deepEqual(c, { count: 7, sum: 21, filled: 30, inVain: 10, windowMs: 120.5 });
  const zero = batchCounts("");
  assert.deepEqual(windowStats({ api: zero, s2: zero }, { api: c, s2: zero }, 50), {
    api: { waits: 40, in_vain: 0.25, ms_per_token: 2.41 },
    s2: { waits: 0, in_vain: 0, ms_per_token: 0 },
  });
  // user nice system idle iowait irq softirq steal guest guest_nice
  const stat = (busy: number, idle: number) => `cpu  ${busy} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n`;
  assert.deepEqual(machineTicks(stat(100, 50)), { busy: 100, idle: 50 });
  assert.equal(idleShare(machineTicks(stat(100, 50)), machineTicks(stat(175, 75))), 0.25);
  assert.equal(idleShare(machineTicks(stat(1, 1)), machineTicks(stat(1, 1))), 0);
  assert.throws(() => machineTicks("intr 5\n"), /no cpu line/);
  const now = machineTicks();
  assert.ok(now.busy > 0 && now.idle >= 0, JSON.stringify(now));
});

Deno.test("soak readings: RSS is this process's VmRSS from /proc, in MiB", () => {
  const held = new Uint8Array(64 * 2 ** 20).fill(1); // resident: every page written
  const mine = rssMiB(Deno.pid);
  const reported = Deno.memoryUsage().rss / 2 ** 20;
  assert.ok(mine > 64 && Math.abs(mine - reported) / reported < 0.1, `${mine} vs ${reported}`);
  assert.equal(held[held.length - 1], 1);
  assert.throws(() => rssMiB(2 ** 30), Deno.errors.NotFound);
});
