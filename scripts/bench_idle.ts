/**
 * `deno task bench idle`: how much slower this machine runs the same work right after its cores sat
 * idle. A span server of a swarm waits between its steps while the other spans and the client
 * compute (two thirds of every decode token in a three-span chain, 15–25 ms here), so what a step
 * costs after such a wait, not in a hot loop, is what sets the pipeline's speed; one process running
 * the whole model never waits. This benchmark measures exactly that, with nothing else involved (no
 * swarm, no second process): a probe runs `--steps` times after each kind of gap, the gaps
 * alternating over `--rounds` rounds, and the medians are reported:
 *
 *   - `hot`: back to back;
 *   - `sleep_N`: after sleeping N ms (the thread blocks, the core may halt);
 *   - `spin_N`: after N ms of busy waiting (the same gap, but the core never halts).
 *
 * Probes: `span_step`, one decode step of `--blocks` blocks of the benchmarks' model (hidden 1024,
 * fp32, the runtime's engine with `--threads` intra-op threads: a span of bench:swarm's servers by
 * default); `span_step_1t`, the same with one thread (when `--threads` > 1); and `js_stream`, a plain
 * loop summing a 64 MiB Float32Array on this thread (memory-bound like a decode step, without
 * onnxruntime or a second thread); `thread_wake`, a 4 KiB message to a Worker and back (what a step
 * pays to hand work to a sleeping thread: a server's runtime Worker, onnxruntime's pool threads; in
 * `spin_N` only this thread was kept busy). `penalty_sleep_N` is `sleep_N ÷ hot`, `penalty_spin_N` is
 * `spin_N ÷ hot`. A sleep penalty well above the spin penalty means that work resumed after the
 * cores sat idle runs slower on this machine; which probes pay it tells where (on the 2-core VM of
 * docs/benchmarks.md: the multi-threaded step only, see its "Idle penalty").
 *
 *   deno task bench idle [--json] [--gaps 3,15] [--steps 30] [--rounds 5] [--blocks 4] [--threads 2]
 *
 * `--json` prints `{"probes": {"span_step": {"hot", "sleep_3", "spin_3", …, "penalty_sleep_3", …}, …},
 * "gaps_ms", "steps", "rounds"}` (ms per run of the probe).
 * @module
 */
import { parseArgs } from "node:util";
import { argsOrExit, makeBenchModel, median, positiveInts } from "./generation_bench.ts";
import { loadSpanEngine } from "./pipe_span_process.ts";

/** A gap before each run of a probe: none, a sleep, or a busy wait, of `ms` milliseconds. */
export interface Gap {
  kind: "hot" | "sleep" | "spin";
  ms: number;
}

/** The report's name of a gap: `hot`, `sleep_15`, `spin_15`. */
export function gapLabel(g: Gap): string {
  return g.kind === "hot" ? "hot" : `${g.kind}_${g.ms}`;
}

/**
 * `hot`, then a sleep and a busy wait for each of the comma-separated gap lengths in ms.
 * Throws `RangeError` naming the flag and the value for anything but numbers > 0.
 */
export function parseGaps(s: string): Gap[] {
  const parts = s.split(",").map((p) => p.trim());
  const ms = parts.map(Number);
  const bad = parts.find((p, i) => p === "" || !Number.isFinite(ms[i]) || ms[i] <= 0);
  if (bad !== undefined) {
    throw new RangeError(
      `--gaps must be comma-separated milliseconds > 0 (e.g. 3,15), got ${JSON.stringify(s)}`,
    );
  }
  return [
    { kind: "hot", ms: 0 },
    ...ms.flatMap((m) => [{ kind: "sleep", ms: m }, { kind: "spin", ms: m }] as Gap[]),
  ];
}

/** Time and waiting, injectable for tests. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** Hot runs before the measured series (`measureGaps`' default). */
export const WARMUP_RUNS = 5;

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * Runs `probe` `steps` times after each gap, in `rounds` rounds that alternate the gaps (each
 * round starting with the next one), after `warmup` hot runs. `fresh` is called before each
 * gap's series (e.g. a new session, so that every series starts from the same state). Returns, per
 * gap label, the median over rounds of each series' median run time (ms).
 */
export async function measureGaps(
  probe: () => Promise<unknown> | unknown,
  gaps: readonly Gap[],
  o: { steps: number; rounds: number; warmup?: number; fresh?: () => void },
  clock: Clock = realClock,
): Promise<Record<string, number>> {
  for (let i = 0; i < (o.warmup ?? WARMUP_RUNS); i++) await probe();
  const series = new Map<string, number[]>(gaps.map((g) => [gapLabel(g), []]));
  for (let round = 0; round < o.rounds; round++) {
    for (let k = 0; k < gaps.length; k++) {
      const g = gaps[(round + k) % gaps.length];
      o.fresh?.();
      const times: number[] = [];
      for (let i = 0; i < o.steps; i++) {
        if (g.kind === "sleep") await clock.sleep(g.ms);
        else if (g.kind === "spin") {
          const until = clock.now() + g.ms;
          while (clock.now() < until) { /* busy wait: the core stays awake */ }
        }
        const t0 = clock.now();
        await probe();
        times.push(clock.now() - t0);
      }
      series.get(gapLabel(g))!.push(median(times));
    }
  }
  return Object.fromEntries([...series].map(([label, ms]) => [label, median(ms)]));
}

/** The medians with `penalty_<gap>` (that gap ÷ hot) added, rounded for the report. */
export function withPenalties(medians: Record<string, number>): Record<string, number> {
  const hot = medians.hot;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(medians)) out[k] = Math.round(v * 1000) / 1000;
  for (const [k, v] of Object.entries(medians)) {
    if (k !== "hot") out[`penalty_${k}`] = Math.round((v / hot) * 1000) / 1000;
  }
  return out;
}

/** A Worker that posts every message straight back (its buffer transferred both ways). */
const ECHO_WORKER = "data:application/javascript," +
  encodeURIComponent("self.onmessage = (e) => self.postMessage(e.data, [e.data.buffer]);");

/** `thread_wake`: round trips of a 4 KiB buffer to an echoing Worker, after each gap. */
async function wakeProbe(
  gaps: readonly Gap[],
  steps: number,
  rounds: number,
): Promise<Record<string, number>> {
  const worker = new Worker(ECHO_WORKER, { type: "module" });
  let buf = new Float32Array(1024);
  let waiting: { resolve: (b: Float32Array<ArrayBuffer>) => void; reject: (e: Error) => void } | undefined;
  worker.onmessage = (e: MessageEvent<Float32Array<ArrayBuffer>>) => waiting?.resolve(e.data);
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    waiting?.reject(new Error(`thread_wake: the echo Worker failed: ${e.message}`));
  };
  try {
    return await measureGaps(
      async () => {
        const back = new Promise<Float32Array<ArrayBuffer>>((resolve, reject) =>
          waiting = { resolve, reject }
        );
        worker.postMessage(buf, [buf.buffer]);
        buf = await back;
        if (buf.byteLength !== 4096) throw new Error("thread_wake: the Worker sent back the wrong buffer");
      },
      gaps,
      { steps, rounds },
    );
  } finally {
    worker.terminate();
  }
}

if (import.meta.main) {
  const { values: a } = parseArgs({
    args: Deno.args,
    options: {
      json: { type: "boolean", default: false },
      gaps: { type: "string", default: "3,15" },
      steps: { type: "string", default: "30" },
      rounds: { type: "string", default: "5" },
      blocks: { type: "string", default: "4" },
      threads: { type: "string", default: "2" },
    },
  });
  const { gaps, steps, rounds, blocks, threads } = argsOrExit(() => ({
    ...positiveInts(a, ["steps", "rounds", "blocks", "threads"]),
    gaps: parseGaps(a.gaps!),
  }));
  const log = (msg: string) => a.json || console.error(msg);
  const ck = await makeBenchModel({ layers: blocks, heads: 16, headDim: 64, threads, tokens: 1, runs: 1 });
  const h = Number(ck.config.hidden_size);
  const x = { data: Float32Array.from({ length: h }, (_, i) => Math.sin(i) / 2), shape: [1, 1, h] };
  /**
   * The span's decode step with `n` intra-op threads (each series in a fresh session), its threads
   * pinned or not; pinning pins this thread for good (threads created later inherit it), so every
   * other probe runs before the first pinned one.
   */
  const spanProbe = async (n: number, pinning: "auto" | "off") => {
    const engine = await loadSpanEngine(
      { model: ck.dir, start: 0, end: blocks, threads: n, pinning },
      (r) => pinning === "auto" && log(`  pinning: ${r.pinning}`),
    );
    try {
      let open = false;
      const fresh = () => {
        if (open) engine.close("idle");
        engine.open("idle", 0, blocks, steps + WARMUP_RUNS, 1); // the warm-up runs in the first one
        open = true;
      };
      fresh();
      return await measureGaps(() => engine.step("idle", x), gaps, { steps, rounds, fresh });
    } finally {
      await engine.dispose();
    }
  };
  try {
    const probes: Record<string, Record<string, number>> = {};
    log("js_stream: summing 64 MiB on this thread");
    const big = new Float32Array(16 << 20).fill(1);
    let sink = 0;
    const stream = await measureGaps(
      () => {
        let s = 0;
        for (let i = 0; i < big.length; i++) s += big[i];
        sink += s;
      },
      gaps,
      { steps, rounds },
    );
    if (sink !== big.length * (WARMUP_RUNS + rounds * steps * gaps.length)) {
      throw new Error("js_stream summed wrong");
    }
    probes.js_stream = withPenalties(stream);
    log("thread_wake: a 4 KiB round trip to a Worker that echoes it");
    probes.thread_wake = withPenalties(await wakeProbe(gaps, steps, rounds));
    if (threads > 1) {
      log("span_step_1t: the span's step with 1 thread");
      probes.span_step_1t = withPenalties(await spanProbe(1, "off"));
      log(`span_step_unpinned: the same with ${threads} threads, not pinned`);
      probes.span_step_unpinned = withPenalties(await spanProbe(threads, "off"));
    }
    log(
      `span_step: ${blocks} blocks of hidden ${h}, ${threads} threads pinned as the runtime pins them (CPU_PINNING auto); gaps ${a.gaps} ms; ${rounds} × ${steps} runs`,
    );
    probes.span_step = withPenalties(await spanProbe(threads, "auto"));
    const result = {
      probes,
      gaps_ms: [...new Set(gaps.filter((g) => g.kind !== "hot").map((g) => g.ms))],
      steps,
      rounds,
      blocks,
      threads,
    };
    if (a.json) console.log(JSON.stringify(result));
    else {
      for (const [name, r] of Object.entries(result.probes)) {
        console.log(`${name}: ${Object.entries(r).map(([k, v]) => `${k} ${v}`).join(", ")}`);
      }
    }
  } finally {
    await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
  }
}
