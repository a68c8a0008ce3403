/**
 * Block runtime benchmark: per-block decode latency at several past lengths against the memory
 * bandwidth limit measured in the same run, prefill tokens/s at 128 and 512, session creation
 * time and RSS, for fp32 and int8 weights (and int8-kv16: int8 with float16 K/V caches), plus an
 * open/close + steps cycle that checks RSS comes back. (The old onnxruntime-node engine was measured
 * against this one here until it lost every comparison; docs/benchmarks.md has the last runs.)
 *
 *   deno task bench:runtime [--model DIR | --shape bloom-560m|qwen3-32b] [--blocks N]
 *     [--variants fp32,int8,...] [--weights fp32|int8] [--pasts 128,1024] [--no-cycle] [--json]
 *
 * Without --model it generates random blocks of `--shape` once into .cache/bench-<shape>-<N>:
 * bloom-560m-sized (hidden 1024, 16 heads; the default) or qwen3-32b-sized (hidden 5120, 64 query
 * and 8 KV heads of 128, intermediate 25600; ~1 GB of BF16 per block, so `--blocks 1`). Each variant runs in its own process, so RSS is its own.
 *
 * The limit of a decode step is the bytes it must read — the block's weights plus the K/V rows of
 * the past and the new token, in the cache's element type — divided by `stream_gb_s`: the best
 * rate of the passes of a graph that only streams a large weight (a 1×K · K×N MatMul of 256 MB on
 * the same threads and settings) seen in the run: 12 passes in a process of its own, 12 more in
 * each variant's process and one per decode round. `vs_limit` = median decode ÷ that limit.
 * The memory rate of this shared machine moves with its neighbours' load (22–68 GB/s seen in one
 * hour), so each decode round is also paired with the stream passes around it:
 * `vs_limit_paired` is the median over rounds of step ÷ the limit at that round's rate.
 *
 * Decode steps at the different past lengths are interleaved (one session each), so load from
 * elsewhere on the machine falls on all of them alike; `decode_ms` is the median step,
 * `decode_min_ms` the fastest.
 *
 * `--json` prints one object: `stream_gb_s`; per variant `decode_ms`, `limit_ms`, `vs_limit`,
 * `vs_limit_paired`, `decode_min_ms`, `vs_limit_min` (objects keyed by past length), `p_ratio` (median decode at the
 * longest past ÷ the shortest),
 * `prefill_tok_s` (keyed by length), `weight_mb`, `kv_cache`, `create_ms`, `rss_mb`;
 * and `cycle` (sessions, steps, RSS before/after and growth %, native objects before/after).
 * @module
 */
import { parseArgs } from "node:util";
import { MAX_SEMI_SPACE_MIB } from "../lib/cli/v8_flags.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import { DataType, OnnxGraph } from "../lib/runtime/onnx_graph.ts";
import { createBlockRuntime, type OnnxBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { OrtApi, type OrtSession, type OrtTensor, TensorType } from "../lib/runtime/native/ort_api.ts";
import { resolveOrtLibrary } from "../lib/runtime/native/ort_library_path.ts";
import { parseModelConfig } from "../lib/runtime/model_config.ts";
import { makeBloom560mBlocks, makeQwen3_32bBlocks } from "./fixtures.ts";

interface VariantResult {
  weights: "fp32" | "int8";
  kv_cache: "float32" | "float16";
  weight_mb: number;
  decode_ms: Record<string, number>;
  /** The fastest step (what the machine allows when nothing else runs). */
  decode_min_ms: Record<string, number>;
  /** Median over the rounds of step ÷ the limit at the stream rate of that round. */
  vs_limit_paired: Record<string, number>;
  /** Bytes a decode step reads per block, by past length. */
  bytes: Record<string, number>;
  prefill_tok_s: Record<string, number>;
  create_ms: number;
  rss_mb: number;
  /** The stream rate measured in this variant's process, before its blocks loaded. */
  stream_gb_s: number;
}

const VARIANTS: Record<string, { weights: "fp32" | "int8"; kv: "float32" | "float16" }> = {
  fp32: { weights: "fp32", kv: "float32" },
  int8: { weights: "int8", kv: "float32" },
  "int8-kv16": { weights: "int8", kv: "float16" },
};

const PREFILL_REPS = 7;
const DECODE_STEPS = 32;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** Settings the engine gives its sessions (kv_engine.ts), for the streaming graph. */
const SPIN = {
  "session.intra_op.allow_spinning": "1",
  "session.inter_op.allow_spinning": "0",
  "session.force_spinning_stop": "1",
};

/** A graph that only streams a large weight: x[1, K] · W[K, N], W of `mb` MB fp32. */
class StreamProbe {
  readonly bytes: number;
  readonly #api: OrtApi;
  readonly #s: OrtSession;
  readonly #x: OrtTensor;
  readonly #y: OrtTensor;

  constructor(library: string, threads: number, mb = 256) {
    const K = 4096, N = (mb * 2 ** 20) / 4 / K;
    this.bytes = K * N * 4;
    const g = new OnnxGraph("stream");
    g.input("x", DataType.FLOAT, [1, K]);
    g.output("y", DataType.FLOAT, [1, N]);
    const w = new Float32Array(K * N);
    for (let i = 0; i < w.length; i += 997) w[i] = 1e-3;
    g.node("MatMul", ["x", g.initializer("w", w, [K, N])], ["y"]);
    const enc = g.encode({ externalAbove: 2 ** 20 });
    this.#api = OrtApi.load(library);
    this.#s = this.#api.session(enc.model, "stream", ["x"], ["y"], {
      intraOpThreads: threads,
      config: SPIN,
      externalData: enc.externalData,
    });
    this.#x = this.#api.tensor(new Float32Array(K).fill(1), [1, K], TensorType.FLOAT);
    this.#y = this.#api.tensor(new Float32Array(N), [1, N], TensorType.FLOAT);
    this.pass();
    this.pass();
  }

  /** GB/s of one pass. */
  pass(): number {
    const t0 = performance.now();
    this.#api.run(this.#s, [this.#x], [this.#y]);
    return this.bytes / ((performance.now() - t0) / 1000) / 1e9;
  }

  /** GB/s of the best of `reps` passes. */
  best(reps = 12): number {
    let r = 0;
    for (let i = 0; i < reps; i++) r = Math.max(r, this.pass());
    return r;
  }

  release(): void {
    for (const h of [this.#x, this.#y, this.#s]) h.release();
    this.#api.dispose();
  }
}

/** GB/s of the best of `reps` passes over a 256 MB weight, in a probe of its own. */
async function streamRate(threads: number, reps = 12): Promise<number> {
  const p = new StreamProbe(await resolveOrtLibrary(), threads);
  try {
    return p.best(reps);
  } finally {
    p.release();
  }
}

async function benchVariant(
  model: string,
  name: string,
  blocks: number,
  pasts: number[],
): Promise<VariantResult> {
  const { weights, kv: kvCache } = VARIANTS[name];
  const maxPast = Math.max(...pasts);
  const rt = createBlockRuntime({
    model,
    start: 0,
    end: blocks,
    weights,
    cacheTokens: 100_000_000,
    maxLength: Math.max(600, maxPast + DECODE_STEPS + 4),
    threads: 2,
    kvCache,
  }) as OnnxBlockRuntime;
  await rt.start();
  const stats = rt.loadStats!;
  const info = rt.info();
  const H = info.hiddenSize;
  const kvElem = kvCache === "float16" ? 2 : 4;
  const cfg = parseModelConfig(JSON.parse(await Deno.readTextFile(`${model}/config.json`)));
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const weightBytes = stats.weightBytes / blocks;
  // Settle: loading a large block leaves garbage and cold pages, and the steps right after it run
  // slower (qwen3-32b-sized blocks); step, rolling back each time, for 3 steps and 1.5 s at least.
  const settle = await rt.openSession({ start: 0, end: blocks, maxLength: 8, batch: 1 });
  await settle.step(fakeHidden(1, 4, H, 1));
  const settleFrom = performance.now();
  for (let i = 0; i < 3 || performance.now() - settleFrom < 1500; i++) {
    await settle.step(fakeHidden(1, 1, H, 2), { startFromPosition: 4 });
  }
  await settle.close();
  const decode: Record<string, number> = {}, best: Record<string, number> = {};
  const paired: Record<string, number> = {}, bytes: Record<string, number> = {};
  const prefill: Record<string, number> = {};
  for (const t of [128, 512]) {
    const x = fakeHidden(1, t, H, 3);
    await rt.forward(0, blocks, x); // warm-up
    const times: number[] = [];
    for (let i = 0; i < PREFILL_REPS; i++) {
      const t0 = performance.now();
      await rt.forward(0, blocks, x);
      times.push(performance.now() - t0);
    }
    prefill[t] = Math.round(t / (median(times) / blocks / 1000));
  }
  const rss = Deno.memoryUsage().rss / 2 ** 20;
  // One session per past length, their steps interleaved, so a burst of load from elsewhere on
  // the machine falls on every length alike; each round also makes one pass of the stream probe,
  // so every step is compared with the memory rate of its own moment.
  const probe = new StreamProbe(await resolveOrtLibrary(), 2);
  let rate = probe.best(12);
  const sessions = [];
  for (const past of pasts) {
    const s = await rt.openSession({ start: 0, end: blocks, maxLength: past + DECODE_STEPS + 4, batch: 1 });
    await s.step(fakeHidden(1, past, H, 1));
    await s.step(fakeHidden(1, 1, H, 2)); // warm-up
    // the K/V rows a step reads: the past, the middle of the timed steps, and its own
    bytes[past] = weightBytes + 2 * kvDim * kvElem * (past + 2 + DECODE_STEPS / 2);
    sessions.push({ past, s, times: [] as number[], ratios: [] as number[] });
  }
  for (let i = 0; i < DECODE_STEPS; i++) {
    const x = fakeHidden(1, 1, H, 10 + i);
    const before = probe.pass();
    const steps: number[] = [];
    for (const { s } of sessions) {
      const t0 = performance.now();
      await s.step(x);
      steps.push((performance.now() - t0) / blocks);
    }
    const now = Math.max(before, probe.pass());
    rate = Math.max(rate, now);
    sessions.forEach((q, k) => {
      q.times.push(steps[k]);
      q.ratios.push(steps[k] / (bytes[q.past] / (now * 1e9) * 1000));
    });
  }
  probe.release();
  for (const { past, s, times, ratios } of sessions) {
    decode[past] = round(median(times));
    best[past] = round(Math.min(...times));
    paired[past] = round(median(ratios), 2);
    await s.close();
  }
  await rt.stop();
  return {
    weights,
    kv_cache: kvCache,
    weight_mb: round(weightBytes / 2 ** 20, 2),
    decode_ms: decode,
    decode_min_ms: best,
    vs_limit_paired: paired,
    bytes,
    prefill_tok_s: prefill,
    create_ms: round(stats.buildMs / blocks, 1),
    rss_mb: Math.round(rss),
    stream_gb_s: rate,
  };
}

/**
 * Opens and closes `sessions` sessions on one int8 block, `steps` steps in all (a 4-token prefill,
 * then decode steps), after a warm-up cycle of the same size; RSS before and after (MB).
 */
async function rssCycle(model: string, sessions = 1000, steps = 10_000) {
  const rt = createBlockRuntime({
    model,
    start: 0,
    end: 1,
    weights: "int8",
    cacheTokens: 10_000_000,
    maxLength: 64,
  }) as OnnxBlockRuntime;
  await rt.start();
  const H = rt.info().hiddenSize;
  const prompt = fakeHidden(1, 4, H, 1), token = fakeHidden(1, 1, H, 2);
  const cycle = async (n: number, total: number) => {
    const per = total / n;
    for (let i = 0; i < n; i++) {
      const s = await rt.openSession({ start: 0, end: 1, maxLength: 64, batch: 1 });
      await s.step(prompt);
      for (let k = 1; k < per; k++) await s.step(token);
      await s.close();
    }
  };
  // Warm up with a whole cycle first: heaps and allocator arenas grow to their working size once.
  // Both isolates collect garbage before each reading (the child runs with --expose-gc).
  const settle = async () => {
    (globalThis as { gc?: () => void }).gc?.();
    return await rt.engineStats();
  };
  await cycle(sessions, steps);
  const start = await settle();
  const before = Deno.memoryUsage().rss;
  await cycle(sessions, steps);
  const end = await settle();
  const after = Deno.memoryUsage().rss;
  await rt.stop();
  return {
    sessions,
    steps,
    rss_before_mb: round(before / 2 ** 20, 1),
    rss_after_mb: round(after / 2 ** 20, 1),
    growth_pct: round((after / before - 1) * 100, 2),
    native_before: start.native,
    native_after: end.native,
  };
}

async function child(args: string[]): Promise<unknown> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--quiet",
      // the binary's young-generation cap (lib/cli/v8_flags.ts): without it the RSS cycle measures
      // mostly how far V8 let each isolate's young generation grow
      `--v8-flags=--expose-gc,--max-semi-space-size=${MAX_SEMI_SPACE_MIB}`,
      new URL(import.meta.url).pathname,
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`bench child ${args.join(" ")} failed (exit ${out.code})`);
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

function report(stream: number, results: Record<string, VariantResult>, pasts: number[]) {
  const out: Record<string, unknown> = { stream_gb_s: round(stream, 2) };
  for (const [name, r] of Object.entries(results)) {
    const limit: Record<string, number> = {}, vs: Record<string, number> = {};
    const vsMin: Record<string, number> = {};
    for (const p of pasts) {
      limit[p] = round(r.bytes[p] / (stream * 1e9) * 1000);
      vs[p] = round(r.decode_ms[p] / limit[p], 2);
      vsMin[p] = round(r.decode_min_ms[p] / limit[p], 2);
    }
    out[name] = {
      weights: r.weights,
      kv_cache: r.kv_cache,
      weight_mb: r.weight_mb,
      decode_ms: r.decode_ms,
      limit_ms: limit,
      vs_limit: vs,
      vs_limit_paired: r.vs_limit_paired,
      decode_min_ms: r.decode_min_ms,
      vs_limit_min: vsMin,
      p_ratio: round(r.decode_ms[pasts[pasts.length - 1]] / r.decode_ms[pasts[0]], 2),
      prefill_tok_s: r.prefill_tok_s,
      create_ms: r.create_ms,
      rss_mb: r.rss_mb,
    };
  }
  return out;
}

function table(rep: Record<string, unknown>, pasts: number[]): string {
  const names = Object.keys(rep).filter((k) => !["stream_gb_s", "cycle"].includes(k));
  const v = (n: string) => rep[n] as Record<string, Record<string, number> | number | string>;
  const rows = [`| metric | ${names.join(" | ")} |`, `|---|${names.map(() => "---").join("|")}|`];
  const row = (label: string, f: (n: string) => string) =>
    rows.push(`| ${label} | ${names.map(f).join(" | ")} |`);
  for (const p of pasts) {
    row(`decode ms/block, past ${p}`, (n) => {
      const r = v(n) as Record<string, Record<string, number>>;
      return `${r.decode_ms[p]} (${r.vs_limit[p]}× limit ${r.limit_ms[p]}; paired ${
        r.vs_limit_paired[p]
      }×; best ${r.decode_min_ms[p]})`;
    });
  }
  row(`decode p${pasts[pasts.length - 1]} ÷ p${pasts[0]}`, (n) => String(v(n).p_ratio));
  for (const t of [128, 512]) {
    row(`prefill tok/s/block, ${t}`, (n) => String((v(n).prefill_tok_s as Record<string, number>)[t]));
  }
  row("weights MB/block", (n) => String(v(n).weight_mb));
  row("KV cache", (n) => String(v(n).kv_cache));
  row("create ms/block", (n) => String(v(n).create_ms));
  row("RSS MB (process)", (n) => String(v(n).rss_mb));
  return rows.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      blocks: { type: "string", default: "8" },
      variants: { type: "string", default: "fp32,int8,int8-kv16" },
      pasts: { type: "string", default: "128,1024" },
      weights: { type: "string" },
      shape: { type: "string", default: "bloom-560m" },
      "no-cycle": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      child: { type: "string" },
    },
  });
  const blocks = Number(values.blocks);
  const pasts = values.pasts.split(",").map(Number).sort((a, b) => a - b);
  if (values.child) {
    // Child process: one measurement, one JSON line on stdout.
    const r = values.child === "stream"
      ? await streamRate(2)
      : values.child === "cycle"
      ? await rssCycle(values.model!)
      : await benchVariant(values.model!, values.child, blocks, pasts);
    console.log(JSON.stringify(r));
    Deno.exit(0);
  }
  const names = values.weights ? [values.weights] : values.variants.split(",");
  for (const n of names) {
    if (!VARIANTS[n]) {
      console.error(`unknown variant ${n}; choose from ${Object.keys(VARIANTS).join(", ")}`);
      Deno.exit(2);
    }
  }
  let model = values.model;
  if (!model) {
    if (values.shape !== "bloom-560m" && values.shape !== "qwen3-32b") {
      console.error(`--shape must be bloom-560m or qwen3-32b, got ${values.shape}`);
      Deno.exit(2);
    }
    const name = values.shape === "bloom-560m" ? "bloom560m" : "qwen3-32b";
    model = new URL(`../.cache/bench-${name}-${blocks}`, import.meta.url).pathname;
    try {
      await Deno.stat(`${model}/config.json`);
    } catch {
      console.error(`generating ${blocks} ${values.shape}-sized random blocks in ${model} ...`);
      if (values.shape === "qwen3-32b") await makeQwen3_32bBlocks(model, blocks);
      else await makeBloom560mBlocks(model, blocks);
    }
  }
  const common = ["--model", model, "--blocks", String(blocks), "--pasts", pasts.join(",")];
  const loadBefore = Deno.loadavg()[0];
  const log = (s: string) => !values.json && console.error(s);
  log("measuring the stream rate ...");
  const stream = await child(["--child", "stream"]) as number;
  const results: Record<string, VariantResult> = {};
  for (const n of names) {
    log(`measuring ${n} ...`);
    results[n] = await child(["--child", n, ...common]) as VariantResult;
  }
  // The machine's rate is the best seen in the run: a pass slowed by load from elsewhere says
  // nothing about the memory, and a low rate would flatter every ratio.
  const rate = Math.max(stream, ...Object.values(results).map((r) => r.stream_gb_s));
  const rep = report(rate, results, pasts);
  if (!values["no-cycle"]) {
    log("open/close 1000 sessions, 10000 steps ...");
    rep.cycle = await child(["--child", "cycle", ...common]);
  }
  if (values.json) console.log(JSON.stringify(rep));
  else {
    const cfg = JSON.parse(await Deno.readTextFile(`${model}/config.json`));
    const what = values.model ? model : `${values.shape}-sized blocks`;
    console.log(
      `${what} (hidden ${cfg.hidden_size ?? cfg.n_embed}, ${cfg.num_attention_heads ?? cfg.n_head} heads), ` +
        `${blocks} blocks in one session, 2 intra-op threads; stream rate ${rep.stream_gb_s} GB/s`,
    );
    console.log(
      `machine: ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}; ` +
        `load average ${loadBefore.toFixed(2)} before, ${Deno.loadavg()[0].toFixed(2)} after`,
    );
    console.log(table(rep, pasts));
    if (rep.cycle) console.log("RSS cycle:", JSON.stringify(rep.cycle));
  }
}
