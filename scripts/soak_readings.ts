/**
 * What the soak benchmark reads from the machine and the servers (scripts/bench_soak.ts): each
 * process's RSS and CPU time from /proc, the machine's idle share from /proc/stat, and the servers'
 * batch counters from their /metrics, with what a phase's readings come to.
 * @module
 */

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** The resident set of process `pid` in MiB (VmRSS of /proc/<pid>/status); throws when unreadable. */
export function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Math.round((Number(kb) / 1024) * 10) / 10;
}

/** CPU time (user + system) process `pid` has used so far, in seconds (/proc/<pid>/stat; Linux's 100 ticks/s). */
export function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // the fields after the command name, which is in parentheses and may hold spaces
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime: fields 14 and 15 of proc(5)
  if (!Number.isFinite(ticks)) throw new Error(`no utime/stime in /proc/${pid}/stat`);
  return ticks / 100;
}

/** CPU milliseconds per generated token of each process between two `cpuSeconds` readings. */
export function cpuMsPerToken(
  before: Record<string, number>,
  after: Record<string, number>,
  tokens: number,
): Record<string, number> {
  return Object.fromEntries(
    Object.keys(before).map((k) => [k, tokens > 0 ? round(((after[k] - before[k]) * 1000) / tokens) : 0]),
  );
}

/** A server's batch counters read from its /metrics. */
export interface BatchCounts {
  /** `plumise_batch_sessions`' count and sum */
  count: number;
  sum: number;
  /** its waits for the sessions of its last batches: filled, in vain, and their ms together */
  filled: number;
  inVain: number;
  windowMs: number;
}

/** A server's batch counters from a /metrics text (zeros for what it has none of). */
export function batchCounts(metrics: string): BatchCounts {
  const get = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? 0);
  return {
    count: get("plumise_batch_sessions_count"),
    sum: get("plumise_batch_sessions_sum"),
    filled: get('plumise_batch_windows_total\\{outcome="filled"\\}'),
    inVain: get('plumise_batch_windows_total\\{outcome="in_vain"\\}'),
    windowMs: get("plumise_batch_window_ms_total"),
  };
}

/**
 * Each server's waits for its recent sessions between two `batchCounts` readings: how many, the
 * share of them in vain, and the ms waited per token generated.
 */
export function windowStats(
  before: Record<string, BatchCounts>,
  after: Record<string, BatchCounts>,
  tokens: number,
): Record<string, { waits: number; in_vain: number; ms_per_token: number }> {
  return Object.fromEntries(
    Object.keys(before).map((k) => {
      const filled = after[k].filled - before[k].filled, vain = after[k].inVain - before[k].inVain;
      const ms = after[k].windowMs - before[k].windowMs;
      return [k, {
        waits: filled + vain,
        in_vain: filled + vain > 0 ? round(vain / (filled + vain), 3) : 0,
        ms_per_token: tokens > 0 ? round(ms / tokens, 3) : 0,
      }];
    }),
  );
}

/** The machine's busy and idle time so far, in ticks (the `cpu` line of /proc/stat; idle + iowait). */
export function machineTicks(stat = Deno.readTextFileSync("/proc/stat")): { busy: number; idle: number } {
  const line = /^cpu\s+(.+)$/m.exec(stat)?.[1];
  if (line === undefined) throw new Error("no cpu line in /proc/stat");
  const f = line.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is counted in user already)
  const idle = f[3] + (f[4] ?? 0), all = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: all - idle, idle };
}

/** The share of the machine's time that was idle between two `machineTicks` readings. */
export function idleShare(
  before: { busy: number; idle: number },
  after: { busy: number; idle: number },
): number {
  const idle = after.idle - before.idle, all = idle + after.busy - before.busy;
  return all > 0 ? round(idle / all, 3) : 0;
}

/** Sessions per batch of each server between two `batchCounts` readings (0 when it ran none). */
export function meanBatch(
  before: Record<string, { count: number; sum: number }>,
  after: Record<string, { count: number; sum: number }>,
): Record<string, number> {
  return Object.fromEntries(
    Object.keys(before).map((k) => {
      const n = after[k].count - before[k].count;
      return [k, n > 0 ? round((after[k].sum - before[k].sum) / n) : 0];
    }),
  );
}

/** The largest `end ÷ warm − 1` over the processes (keys of `warm`), rounded to 3 digits. */
export function rssGrowth(warm: Record<string, number>, end: Record<string, number>): number {
  const g = Object.keys(warm).map((k) => end[k] / warm[k] - 1);
  return Math.round(Math.max(...g) * 1000) / 1000;
}
