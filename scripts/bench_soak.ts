/**
 * `deno task bench soak`: does a node hold up under load for a long time? A three-server loopback
 * swarm of `plumise serve --offline` processes (2 bloom-560m-sized blocks each, scripts/fixtures.ts;
 * node 1 serves blocks 0:2 and the HTTP API the clients use, nodes 2 and 3 the rest; `--servers`
 * splits the 6 blocks over 1, 2, 3 or 6 processes instead), `--clients` HTTP clients each posting
 * `POST /api/v1/generate` back to back for `--minutes` minutes, then one client alone for
 * `--one-minutes` (docs/benchmarks.md, "Soak").
 *
 *   deno task bench soak [--clients 4] [--minutes 2] [--warmup-minutes 1] [--one-minutes 1]
 *     [--tokens 16] [--servers 3] [--threads N] [--pinning auto|off|CPUS] [--tiny] [--heap]
 *     [--v8-flags FLAGS] [--json]
 *
 * Reported: requests and failures (anything but a 200 with `num_tokens` ≥ 1, a refused connection
 * included), tokens/s of all clients together (`tok_s`) and of the one client (`tok_s_one`), and
 * each server process's RSS (VmRSS of /proc/<pid>/status) at the end of the warm-up (`rss_warm_mb`:
 * `--warmup-minutes` into the run under load) and at the end of the run under load (`rss_end_mb`),
 * keyed `api` (node 1), `server2`, `server3`. `rss_growth` is the largest `end ÷ warm − 1` over the
 * three processes. `--heap` runs the servers with the V8 inspector on and adds `heap_warm_mb` /
 * `heap_end_mb`: each process's JS heap in use right after a full garbage collection, which tells a
 * JS leak from native growth. `--v8-flags` runs the servers with these V8 flags on top of the
 * binary's (lib/cli/v8_flags.ts; e.g. `--max-semi-space-size=32`, V8's own default here, to see
 * what the binary's cap changes). `--threads` and `--pinning` set every server's `PLUMISE_THREADS`
 * and `CPU_PINNING` (default: the node's defaults; the three servers share this machine's cores).
 * `--tiny` uses a tiny model instead (the bench's test).
 *
 * `cpu_ms_per_token` (`cpu_ms_per_token_one` for the one client) is each process's CPU time (user +
 * system, /proc/<pid>/stat) over the phase ÷ the tokens generated in it, keyed like RSS plus
 * `clients` (this process, which runs the HTTP clients): where the machine's cores go per token.
 *
 * `mean_batch` is each server's sessions per batch of steps under load (its /metrics).
 *
 * `--json` prints one object: `{clients, minutes, warmup_minutes, requests, failed, tokens, tok_s,
 * tok_s_one, requests_one, failed_one, cpu_ms_per_token, cpu_ms_per_token_one, mean_batch,
 * rss_warm_mb, rss_end_mb, rss_growth, rss_series_mb, …}`.
 * @module
 */
import { parseArgs } from "node:util";
import { makeBloom560mBlocks } from "./fixtures.ts";
import { argsOrExit } from "./generation_bench.ts";
import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";
import { freePort } from "../tests/helpers/free_port.ts";
import { NodeProcess } from "../tests/helpers/serve_process.ts";
import { waitFor } from "../tests/helpers/wait_for.ts";
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

export interface SoakArgs {
  clients: number;
  minutes: number;
  warmupMinutes: number;
  oneMinutes: number;
  tokens: number;
  /** Server processes the 6 blocks are split over (1, 2, 3 or 6). */
  servers: number;
}

/** The numeric options, checked (throws `RangeError` naming the flag and the value). */
export function soakArgs(v: {
  clients: string;
  minutes: string;
  "warmup-minutes": string;
  "one-minutes": string;
  tokens: string;
  servers?: string;
  threads?: string;
}): SoakArgs {
  const n: SoakArgs = {
    clients: Number(v.clients),
    minutes: Number(v.minutes),
    warmupMinutes: Number(v["warmup-minutes"]),
    oneMinutes: Number(v["one-minutes"]),
    tokens: Number(v.tokens),
    servers: Number(v.servers ?? 3),
  };
  for (const k of ["clients", "tokens"] as const) {
    if (!Number.isInteger(n[k]) || n[k] < 1) {
      throw new RangeError(`--${k} must be an integer ≥ 1, got ${n[k]}`);
    }
  }
  for (const [k, x] of [["minutes", n.minutes], ["one-minutes", n.oneMinutes]] as const) {
    if (!(x > 0)) throw new RangeError(`--${k} must be a number > 0, got ${x}`);
  }
  if (v.threads !== undefined && !(Number.isInteger(Number(v.threads)) && Number(v.threads) >= 1)) {
    throw new RangeError(`--threads must be an integer ≥ 1, got ${v.threads}`);
  }
  if (![1, 2, 3, 6].includes(n.servers)) {
    throw new RangeError(`--servers must be 1, 2, 3 or 6 (they split 6 blocks), got ${v.servers}`);
  }
  if (!(n.warmupMinutes >= 0 && n.warmupMinutes < n.minutes)) {
    throw new RangeError(`--warmup-minutes must be ≥ 0 and below --minutes, got ${n.warmupMinutes}`);
  }
  return n;
}

/** The outcome of `clients` loops posting generations until `until()` is true. */
export interface LoadResult {
  requests: number;
  failed: number;
  tokens: number;
  seconds: number;
  errors: string[];
}

/** Runs `clients` loops of `request` until `stop()`; each request counts once it settled. */
export async function runClients(
  clients: number,
  stop: () => boolean,
  request: (client: number, n: number) => Promise<number>,
): Promise<LoadResult> {
  const r: LoadResult = { requests: 0, failed: 0, tokens: 0, seconds: 0, errors: [] };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async (_, c) => {
    for (let n = 0; !stop(); n++) {
      try {
        const tokens = await request(c, n); // not `r.tokens += await …`: that adds to a stale total
        r.tokens += tokens;
      } catch (err) {
        r.failed++;
        if (r.errors.length < 10) r.errors.push(String((err as Error)?.message ?? err).slice(0, 300));
      }
      r.requests++;
    }
  }));
  r.seconds = (performance.now() - t0) / 1000;
  return r;
}

/** One non-streamed greedy generation of `tokens` tokens; resolves to its `num_tokens` (≥ 1) or throws. */
export async function generateOnce(api: string, prompt: string, tokens: number): Promise<number> {
  const res = await fetch(`${api}/api/v1/generate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ inputs: prompt, parameters: { max_new_tokens: tokens, do_sample: false } }),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`);
  const n = JSON.parse(text).num_tokens;
  if (!(typeof n === "number" && n >= 1)) throw new Error(`no tokens: ${text.slice(0, 200)}`);
  return n;
}

/** A V8 inspector session over a process's `--inspect` WebSocket: the JS heap in use after a full GC. */
export async function heapAfterGcMiB(wsUrl: string): Promise<number> {
  const ws = new WebSocket(wsUrl);
  const pending = new Map<number, (v: Record<string, unknown>) => void>();
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    if (typeof m.id === "number") pending.get(m.id)?.(m);
  };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`inspector ${wsUrl} unreachable`));
  });
  let id = 0;
  const call = (method: string, params: unknown = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      pending.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await call("HeapProfiler.collectGarbage");
    const r = await call("Runtime.evaluate", {
      expression: "Deno.memoryUsage().heapUsed",
      returnByValue: true,
    });
    const v = (r.result as { result?: { value?: unknown } })?.result?.value;
    if (typeof v !== "number") {
      throw new Error(`inspector: no heap figure: ${JSON.stringify(r).slice(0, 200)}`);
    }
    return Math.round((v / 2 ** 20) * 10) / 10;
  } finally {
    ws.close();
  }
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      clients: { type: "string", default: "4" },
      minutes: { type: "string", default: "2" },
      "warmup-minutes": { type: "string", default: "1" },
      "one-minutes": { type: "string", default: "1" },
      servers: { type: "string", default: "3" },
      tokens: { type: "string", default: "16" },
      tiny: { type: "boolean", default: false },
      heap: { type: "boolean", default: false },
      "v8-flags": { type: "string" },
      threads: { type: "string" },
      pinning: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const n = argsOrExit(() => soakArgs(a));
  const per = 6 / n.servers;
  const log = (msg: string) => a.json || console.error(msg);
  const root = await Deno.makeTempDir({ prefix: "plumise-soak-" });
  const nodes: NodeProcess[] = [];
  const inspectPorts: number[] = [];
  try {
    const ckpt = a.tiny
      ? await makeBloomCheckpoint({ dir: `${root}/ckpt`, numLayers: 6, shards: 1 })
      : await makeBloom560mBlocks(`${root}/ckpt`, 6);
    const env = (i: number, extra: Record<string, string> = {}) => ({
      MODEL_NAME: ckpt.dir,
      BLOCK_INDICES: `${per * i}:${per * (i + 1)}`,
      NUM_BLOCKS: String(per),
      PLUMISE_DATA_DIR: `${root}/n${i + 1}`,
      HF_HOME: `${root}/hf`,
      API_HOST: "127.0.0.1",
      API_PORT: "0",
      API_MAX_CONCURRENT: String(Math.max(4, n.clients)),
      PETALS_HOST: "127.0.0.1",
      PETALS_PORT: "0",
      DIRECT_PORT: "0",
      LOG_JSON: "true",
      ...(a.threads ? { PLUMISE_THREADS: a.threads } : {}),
      ...(a.pinning ? { CPU_PINNING: a.pinning } : {}),
      ...extra,
    });
    const inspect = (i: number) => [
      ...(a.heap ? [`--inspect=127.0.0.1:${inspectPorts[i] = freePort()}`] : []),
      ...(a["v8-flags"] ? [`--v8-flags=${a["v8-flags"]}`] : []),
    ];
    const spawn = async (i: number, extra?: Record<string, string>) => {
      await Deno.mkdir(`${root}/n${i + 1}`, { recursive: true });
      const p = new NodeProcess(i === 0 ? "api" : `server${i + 1}`, env(i, extra), ["--offline"], inspect(i));
      nodes[i] = p;
      return p;
    };
    log(
      `model: ${
        a.tiny ? "tiny" : "bloom-560m-sized"
      }, 6 blocks, ${n.servers} server(s) of ${per}; ${n.clients} clients`,
    );
    const api = await (await spawn(0)).online();
    const peers = api.addrs.join(",");
    await Promise.all(
      Array.from({ length: n.servers - 1 }, (_, k) => k + 1).map(async (i) =>
        (await spawn(i, { PETALS_INITIAL_PEERS: peers })).online()
      ),
    );
    /** Each server's batches so far (its /metrics): how many, and the sessions in them. */
    const batchesAll = async () =>
      Object.fromEntries(
        await Promise.all(nodes.map(async (p) => {
          const metrics = await (await fetch(`${(await p.online()).api}/metrics`)).text();
          return [p.name, batchCounts(metrics)];
        })),
      );
    await waitFor(async () => (await (await fetch(`${api.api}/health`)).json()).swarm?.complete, {
      timeoutMs: 120_000,
      what: "a complete swarm in the API node's /health",
    });
    const wsUrls = a.heap
      ? await Promise.all(inspectPorts.map(async (port) => {
        const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
        return String(list[0].webSocketDebuggerUrl);
      }))
      : [];
    const rssAll = () => Object.fromEntries(nodes.map((p) => [p.name, rssMiB(p.pid)]));
    // the clients run in this process: its CPU is the HTTP clients'
    const cpuAll = () => ({
      ...Object.fromEntries(nodes.map((p) => [p.name, cpuSeconds(p.pid)])),
      clients: cpuSeconds(Deno.pid),
    });
    const heapAll = async () =>
      Object.fromEntries(
        await Promise.all(nodes.map(async (p, i) => [p.name, await heapAfterGcMiB(wsUrls[i])])),
      );
    const prompt = (c: number, k: number) => `client ${c} request ${k}: tell me about the swarm`;

    /** RSS of each process; with `--heap`, also its JS heap after a full GC and its RSS after that GC. */
    const sample = async () => {
      const raw = rssAll();
      if (!a.heap) return { raw };
      const heap = await heapAll();
      return { raw, heap, gc: rssAll() };
    };

    // the run under load: RSS sampled every 10 s, the warm-up figures taken once it ends
    const ms = n.minutes * 60_000, warmMs = n.warmupMinutes * 60_000;
    const series: Record<string, unknown>[] = [];
    const at = (s: Awaited<ReturnType<typeof sample>>) => ({
      s: Math.round(elapsed() / 1000),
      ...s.raw,
      ...(s.gc ? { after_gc: s.gc } : {}),
    });
    let warm: Awaited<ReturnType<typeof sample>> | undefined;
    const t0 = performance.now();
    const elapsed = () => performance.now() - t0;
    let done = false;
    const batches0 = await batchesAll();
    const cpu0 = cpuAll(), ticks0 = machineTicks();
    const sampler = (async () => {
      let next = 0;
      while (!done) {
        if (!warm && elapsed() >= warmMs) {
          warm = await sample();
          series.push(at(warm));
          next = elapsed() + 10_000;
          log(`warm-up over (${round(elapsed() / 1000, 1)} s): RSS ${JSON.stringify(warm.raw)} MiB`);
        }
        if (elapsed() >= next) {
          series.push(at(await sample()));
          next += 10_000;
        }
        await sleep(Math.min(250, Math.max(10, warmMs - elapsed())));
      }
    })();
    const load = await runClients(
      n.clients,
      () => elapsed() >= ms,
      (c, k) => generateOnce(api.api, prompt(c, k), n.tokens),
    );
    const cpu1 = cpuAll(), ticks1 = machineTicks();
    const batches1 = await batchesAll();
    done = true;
    await sampler;
    const endSample = await sample();
    const end = endSample.raw;
    series.push(at(endSample));
    log(
      `${n.clients} clients: ${load.requests} requests, ${load.failed} failed, ${
        round(load.tokens / load.seconds)
      } tok/s; RSS at the end ${JSON.stringify(end)} MiB`,
    );
    // then one client alone
    const cpu2 = cpuAll(), ticks2 = machineTicks();
    const t1 = performance.now();
    const one = await runClients(
      1,
      () => performance.now() - t1 >= n.oneMinutes * 60_000,
      (_, k) => generateOnce(api.api, prompt(0, k), n.tokens),
    );
    const cpu3 = cpuAll(), ticks3 = machineTicks();
    const result = {
      clients: n.clients,
      minutes: n.minutes,
      ...(a["v8-flags"] ? { v8_flags: a["v8-flags"] } : {}),
      servers: n.servers,
      ...(a.threads ? { threads: Number(a.threads) } : {}),
      ...(a.pinning ? { pinning: a.pinning } : {}),
      warmup_minutes: n.warmupMinutes,
      tokens_per_request: n.tokens,
      requests: load.requests,
      failed: load.failed,
      tokens: load.tokens,
      tok_s: round(load.tokens / load.seconds),
      requests_one: one.requests,
      failed_one: one.failed,
      tok_s_one: round(one.tokens / one.seconds),
      cpu_ms_per_token: cpuMsPerToken(cpu0, cpu1, load.tokens),
      mean_batch: meanBatch(batches0, batches1),
      windows: windowStats(batches0, batches1, load.tokens),
      idle: idleShare(ticks0, ticks1),
      cpu_ms_per_token_one: cpuMsPerToken(cpu2, cpu3, one.tokens),
      idle_one: idleShare(ticks2, ticks3),
      rss_warm_mb: warm!.raw,
      rss_end_mb: end,
      rss_growth: rssGrowth(warm!.raw, end),
      ...(a.heap
        ? {
          heap_warm_mb: warm!.heap,
          heap_end_mb: endSample.heap,
          rss_gc_warm_mb: warm!.gc,
          rss_gc_end_mb: endSample.gc,
          rss_gc_growth: rssGrowth(warm!.gc!, endSample.gc!),
        }
        : {}),
      rss_series_mb: series,
      pids: Object.fromEntries(nodes.map((p) => [p.name, p.pid])),
      ...(load.errors.length + one.errors.length ? { errors: [...load.errors, ...one.errors] } : {}),
    };
    if (a.json) console.log(JSON.stringify(result));
    else {
      console.log(
        `requests ${result.requests}, failed ${result.failed}, ${result.tok_s} tok/s (one client: ${result.tok_s_one})`,
      );
      for (const p of nodes) {
        const heap = a.heap
          ? `; after a GC: RSS ${warm!.gc![p.name]} → ${endSample.gc![p.name]} MiB, JS heap ${
            warm!.heap![p.name]
          } → ${endSample.heap![p.name]} MiB`
          : "";
        console.log(`${p.name.padEnd(8)} RSS ${warm!.raw[p.name]} → ${end[p.name]} MiB${heap}`);
      }
      console.log(
        `CPU ms per token: ${JSON.stringify(result.cpu_ms_per_token)}; one client: ${
          JSON.stringify(result.cpu_ms_per_token_one)
        }`,
      );
      console.log(`rss_growth ${result.rss_growth}${a.heap ? `, after a GC ${result.rss_gc_growth}` : ""}`);
    }
  } finally {
    for (const p of nodes) await p?.[Symbol.asyncDispose]();
    await Deno.remove(root, { recursive: true }).catch(() => {});
  }
}
