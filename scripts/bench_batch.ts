/**
 * Continuous batching benchmark: one runtime serving one span, 1, 2, 4, 8 and 16 inference
 * sessions decoding at once through it (each its own client loop: step, await, step again), so
 * the runtime Worker batches whatever steps are ready (docs/architecture.md, "Continuous
 * batching"). Per level: aggregate tokens/s (every session's steps ÷ the wall time of the level)
 * and the per-step latency p50/p99 seen by the sessions.
 *
 *   deno task bench batch [--model DIR] [--blocks 4] [--weights int8|fp32] [--kv float32|float16]
 *     [--sessions 1,2,4,8,16] [--steps 48] [--past 128] [--rounds 3] [--json]
 *
 * Without --model it generates bloom-560m-sized random blocks once into .cache/bench-bloom560m-<N>
 * (the same blocks bench:runtime uses). Each session's prompt of `--past` tokens runs first
 * (sessions one after another), then 4 warm-up steps, then `--steps` timed decode steps. The levels run
 * in turn `--rounds` times (so load from elsewhere on the machine falls on all of them alike): `tok_s` is
 * the median over the rounds, the latencies are those of every round's steps.
 *
 * `--json` prints one object: `sessions`, `tok_s`, `p50_ms`, `p99_ms`, `mean_batch` (sessions per
 * batch the Worker ran; arrays in the order of `sessions`),
 * `speedup_8` (aggregate tok/s at 8 sessions ÷ at 1; absent when either level was not run) and
 * `p50_ratio_8` (p50 at 8 ÷ at 1).
 * @module
 */
import { parseArgs } from "node:util";
import { fakeHidden } from "../lib/testing/mod.ts";
import { createBlockRuntime, type OnnxBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { makeBloom560mBlocks } from "./fixtures.ts";

export interface BatchBenchOptions {
  model: string;
  blocks: number;
  weights: "fp32" | "int8";
  /** The K/V caches' element type (the node's default: float32). */
  kv?: "float32" | "float16";
  sessions: number[];
  steps: number;
  past: number;
  /** Times each level runs (the levels in turn, so load from elsewhere falls on all of them alike). */
  rounds?: number;
  threads?: number;
  log?: (s: string) => void;
}

export interface BatchBenchResult {
  sessions: number[];
  tok_s: number[];
  p50_ms: number[];
  p99_ms: number[];
  /** Mean sessions per batch the Worker ran during the timed steps. */
  mean_batch: number[];
  speedup_8?: number;
  p50_ratio_8?: number;
}

const WARM = 4;
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** The q-quantile of `a` (nearest rank). */
export function quantile(a: readonly number[], q: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** Runs the levels on one runtime; see the module comment. */
export async function benchBatch(o: BatchBenchOptions): Promise<BatchBenchResult> {
  const rt = createBlockRuntime({
    model: o.model,
    start: 0,
    end: o.blocks,
    weights: o.weights,
    kvCache: o.kv ?? "float32",
    cacheTokens: 100_000_000,
    maxLength: o.past + WARM + o.steps + 8,
    threads: o.threads ?? 2,
    onBatch: (e) => batches.push(...e.sizes),
  }) as OnnxBlockRuntime;
  const batches: number[] = [];
  await rt.start();
  const H = rt.info().hiddenSize;
  const r: BatchBenchResult = { sessions: [], tok_s: [], p50_ms: [], p99_ms: [], mean_batch: [] };
  const per = o.sessions.map(() => ({ tokS: [] as number[], lat: [] as number[], sizes: [] as number[] }));
  const pause = () => new Promise((res) => setTimeout(res, 250)); // the Worker reports batches every 200 ms
  try {
    for (let round = 0; round < (o.rounds ?? 3); round++) {
      for (const [li, n] of o.sessions.entries()) {
        const ss = [];
        for (let i = 0; i < n; i++) {
          const s = await rt.openSession({
            start: 0,
            end: o.blocks,
            maxLength: o.past + WARM + o.steps + 4,
            batch: 1,
          });
          await s.step(fakeHidden(1, o.past, H, 1 + i));
          ss.push(s);
        }
        const x = fakeHidden(1, 1, H, 7);
        await Promise.all(ss.map(async (s) => {
          for (let k = 0; k < WARM; k++) await s.step(x);
        }));
        await pause();
        batches.length = 0;
        const t0 = performance.now();
        await Promise.all(ss.map(async (s) => {
          for (let k = 0; k < o.steps; k++) {
            const a = performance.now();
            await s.step(x);
            per[li].lat.push(performance.now() - a);
          }
        }));
        const wall = (performance.now() - t0) / 1000;
        await pause();
        per[li].sizes.push(...batches);
        per[li].tokS.push((n * o.steps) / wall);
        for (const s of ss) await s.close();
      }
    }
  } finally {
    await rt.stop();
  }
  for (const [li, n] of o.sessions.entries()) {
    const p = per[li];
    r.sessions.push(n);
    r.tok_s.push(round(quantile(p.tokS, 0.5), 1));
    r.p50_ms.push(round(quantile(p.lat, 0.5)));
    r.p99_ms.push(round(quantile(p.lat, 0.99)));
    r.mean_batch.push(round(p.sizes.reduce((a, x) => a + x, 0) / Math.max(1, p.sizes.length), 2));
    o.log?.(
      `${n} sessions: ${r.tok_s.at(-1)} tok/s, step p50 ${r.p50_ms.at(-1)} ms, p99 ${r.p99_ms.at(-1)} ms, ` +
        `${r.mean_batch.at(-1)} sessions per batch`,
    );
  }
  const one = r.sessions.indexOf(1), eight = r.sessions.indexOf(8);
  if (one >= 0 && eight >= 0) {
    r.speedup_8 = round(r.tok_s[eight] / r.tok_s[one], 2);
    r.p50_ratio_8 = round(r.p50_ms[eight] / r.p50_ms[one], 2);
  }
  return r;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      blocks: { type: "string", default: "4" },
      weights: { type: "string", default: "int8" },
      kv: { type: "string", default: "float32" },
      sessions: { type: "string", default: "1,2,4,8,16" },
      steps: { type: "string", default: "48" },
      past: { type: "string", default: "128" },
      rounds: { type: "string", default: "3" },
      json: { type: "boolean", default: false },
    },
  });
  const blocks = Number(values.blocks);
  if (values.weights !== "int8" && values.weights !== "fp32") {
    console.error(`--weights must be int8 or fp32, got ${values.weights}`);
    Deno.exit(2);
  }
  if (values.kv !== "float32" && values.kv !== "float16") {
    console.error(`--kv must be float32 or float16, got ${values.kv}`);
    Deno.exit(2);
  }
  let model = values.model;
  if (!model) {
    model = new URL(`../.cache/bench-bloom560m-${blocks}`, import.meta.url).pathname;
    try {
      await Deno.stat(`${model}/config.json`);
    } catch {
      console.error(`generating ${blocks} bloom-560m-sized random blocks in ${model} ...`);
      await makeBloom560mBlocks(model, blocks);
    }
  }
  const log = (s: string) => !values.json && console.error(s);
  const loadBefore = Deno.loadavg()[0];
  const r = await benchBatch({
    model,
    blocks,
    weights: values.weights,
    kv: values.kv,
    sessions: values.sessions.split(",").map(Number),
    steps: Number(values.steps),
    past: Number(values.past),
    rounds: Number(values.rounds),
    log,
  });
  if (values.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `${blocks} bloom-560m-sized ${values.weights} blocks, ${values.kv} caches, 2 intra-op threads; machine: ${navigator.hardwareConcurrency} ` +
        `cores, load average ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`,
    );
    console.log(JSON.stringify(r));
  }
}
