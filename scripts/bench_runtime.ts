/**
 * Block runtime benchmark: per-block decode latency at past 128 and 1024, prefill tokens/s at 128
 * and 512, graph/session creation time per block and RSS, for fp32 and int8 onnxruntime blocks,
 * side by side (for BLOOM models) with a baseline measured in the same run: a straightforward
 * float32 JavaScript implementation of the same BLOOM block math with an in-place KV cache.
 *
 *   deno task bench:runtime [--model DIR | --shape bloom-560m|qwen3-32b] [--weights fp32|int8]
 *     [--blocks N] [--json]
 *
 * Without --model it generates random blocks of `--shape` once into .cache/bench-<shape>-<N>:
 * bloom-560m-sized (hidden 1024, 16 heads; the default) or qwen3-32b-sized (hidden 5120, 64 query
 * and 8 KV heads of 128, intermediate 25600; ~1 GB of BF16 per block, so `--blocks 1` is the
 * sensible count). Each variant runs in its own process so RSS is its own.
 * `--json` prints one object {"fp32": {...}, "int8": {...}, "baseline"?: {...}} with the keys
 * decode_ms_p128, decode_ms_p1024, prefill_tok_s_128, prefill_tok_s_512, create_ms, rss_mb.
 * @module
 */
import { parseArgs } from "node:util";
import { fakeHidden } from "../lib/runtime/fake_backend.ts";
import { createBlockRuntime, type OnnxBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { SafetensorsFile } from "../lib/runtime/safetensors.ts";
import { makeBloom560mBlocks, makeQwen3_32bBlocks } from "./fixtures.ts";

interface Result {
  decode_ms_p128: number;
  decode_ms_p1024: number;
  prefill_tok_s_128: number;
  prefill_tok_s_512: number;
  create_ms: number;
  rss_mb: number;
}

/**
 * Timed prefill passes per length (median taken; the machine is shared, so more than a few); 3 where
 * one pass takes over 2 s (a qwen3-32b-sized fp32 block).
 */
const PREFILL_REPS = 7;
const SLOW_PREFILL_REPS = 3;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const DECODE_STEPS = 24;

async function benchOnnx(model: string, weights: "fp32" | "int8", blocks: number): Promise<Result> {
  const rt = createBlockRuntime({
    model,
    start: 0,
    end: blocks,
    weights,
    cacheTokens: 10_000_000,
    maxLength: 1100,
    threads: 2,
  });
  await rt.start();
  const stats = (rt as OnnxBlockRuntime).loadStats!;
  const H = rt.info().hiddenSize;
  // Settle: loading a large block leaves gigabytes of garbage and cold pages, and the steps right
  // after it run slower (qwen3-32b-sized blocks); step, rolling back each time, until
  // 3 steps and 1.5 s have passed before anything is timed.
  const settle = await rt.openSession({ start: 0, end: blocks, maxLength: 8, batch: 1 });
  await settle.step(fakeHidden(1, 4, H, 1));
  const settleFrom = performance.now();
  for (let i = 0; i < 3 || performance.now() - settleFrom < 1500; i++) {
    await settle.step(fakeHidden(1, 1, H, 2), { startFromPosition: 4 });
  }
  await settle.close();
  const decode: Record<number, number> = {};
  for (const past of [128, 1024]) {
    const s = await rt.openSession({ start: 0, end: blocks, maxLength: past + DECODE_STEPS + 4, batch: 1 });
    await s.step(fakeHidden(1, past, H, 1));
    await s.step(fakeHidden(1, 1, H, 2)); // warm-up
    const times: number[] = [];
    for (let i = 0; i < DECODE_STEPS; i++) {
      const x = fakeHidden(1, 1, H, 10 + i);
      const t0 = performance.now();
      await s.step(x);
      times.push(performance.now() - t0);
    }
    decode[past] = median(times) / blocks;
    await s.close();
  }
  const prefill: Record<number, number> = {};
  for (const t of [128, 512]) {
    const x = fakeHidden(1, t, H, 3);
    const w0 = performance.now();
    await rt.forward(0, blocks, x); // warm-up
    const reps = performance.now() - w0 > 2000 ? SLOW_PREFILL_REPS : PREFILL_REPS;
    const times: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      await rt.forward(0, blocks, x);
      times.push(performance.now() - t0);
    }
    prefill[t] = t / (median(times) / blocks / 1000);
  }
  const rss = Deno.memoryUsage().rss / 2 ** 20;
  await rt.stop();
  return {
    decode_ms_p128: round(decode[128]),
    decode_ms_p1024: round(decode[1024]),
    prefill_tok_s_128: Math.round(prefill[128]),
    prefill_tok_s_512: Math.round(prefill[512]),
    create_ms: round(stats.buildMs / blocks, 1),
    rss_mb: Math.round(rss),
  };
}

// ---------------------------------------------------------------- baseline: plain JS BLOOM block

interface BaseBlock {
  H: number;
  n: number;
  d: number;
  eps: number;
  ln1w: Float32Array;
  ln1b: Float32Array;
  qkvW: Float32Array;
  qkvB: Float32Array;
  denseW: Float32Array;
  denseB: Float32Array;
  ln2w: Float32Array;
  ln2b: Float32Array;
  upW: Float32Array;
  upB: Float32Array;
  downW: Float32Array;
  downB: Float32Array;
  slopes: Float32Array;
}

async function loadBaseBlock(model: string): Promise<BaseBlock> {
  const cfg = JSON.parse(await Deno.readTextFile(`${model}/config.json`));
  const f = await SafetensorsFile.open(`${model}/model.safetensors`);
  const pre = f.tensors.has("h.0.input_layernorm.weight") ? "h.0." : "transformer.h.0.";
  const r = async (n: string) => (await f.read(pre + n)).data;
  const H = cfg.hidden_size, n = cfg.n_head;
  const p = 2 ** Math.floor(Math.log2(n));
  const slopes = new Float32Array(n);
  for (let k = 1; k <= p; k++) slopes[k - 1] = (2 ** (-8 / p)) ** k;
  for (let i = 0; p + i < n; i++) slopes[p + i] = (2 ** (-4 / p)) ** (2 * i + 1);
  const b: BaseBlock = {
    H,
    n,
    d: H / n,
    eps: cfg.layer_norm_epsilon,
    ln1w: await r("input_layernorm.weight"),
    ln1b: await r("input_layernorm.bias"),
    qkvW: await r("self_attention.query_key_value.weight"),
    qkvB: await r("self_attention.query_key_value.bias"),
    denseW: await r("self_attention.dense.weight"),
    denseB: await r("self_attention.dense.bias"),
    ln2w: await r("post_attention_layernorm.weight"),
    ln2b: await r("post_attention_layernorm.bias"),
    upW: await r("mlp.dense_h_to_4h.weight"),
    upB: await r("mlp.dense_h_to_4h.bias"),
    downW: await r("mlp.dense_4h_to_h.weight"),
    downB: await r("mlp.dense_4h_to_h.bias"),
    slopes,
  };
  f.close();
  return b;
}

/** y[t] = W x[t] + b for T rows; W [out, in] row-major. */
function linear(
  x: Float32Array,
  T: number,
  inp: number,
  w: Float32Array,
  b: Float32Array,
  out: number,
): Float32Array {
  const y = new Float32Array(T * out);
  for (let o = 0; o < out; o++) {
    const wo = o * inp;
    for (let t = 0; t < T; t++) {
      let s = b[o];
      const xt = t * inp;
      for (let i = 0; i < inp; i++) s += w[wo + i] * x[xt + i];
      y[t * out + o] = s;
    }
  }
  return y;
}

function layerNorm(
  x: Float32Array,
  T: number,
  H: number,
  w: Float32Array,
  b: Float32Array,
  eps: number,
): Float32Array {
  const y = new Float32Array(x.length);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let i = 0; i < H; i++) mean += x[t * H + i];
    mean /= H;
    let v = 0;
    for (let i = 0; i < H; i++) v += (x[t * H + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / H + eps);
    for (let i = 0; i < H; i++) y[t * H + i] = (x[t * H + i] - mean) * inv * w[i] + b[i];
  }
  return y;
}

/** One BLOOM block on T tokens after `past` cached ones; K/V cache [maxLen, H] each, appended in place. */
function baseStep(
  bl: BaseBlock,
  x: Float32Array,
  T: number,
  past: number,
  kc: Float32Array,
  vc: Float32Array,
): Float32Array {
  const { H, n, d } = bl;
  const h1 = layerNorm(x, T, H, bl.ln1w, bl.ln1b, bl.eps);
  const qkv = linear(h1, T, H, bl.qkvW, bl.qkvB, 3 * H);
  const attn = new Float32Array(T * H);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < n; h++) {
      kc.set(qkv.subarray(t * 3 * H + h * 3 * d + d, t * 3 * H + h * 3 * d + 2 * d), (past + t) * H + h * d);
      vc.set(
        qkv.subarray(t * 3 * H + h * 3 * d + 2 * d, t * 3 * H + h * 3 * d + 3 * d),
        (past + t) * H + h * d,
      );
    }
  }
  const scores = new Float32Array(past + T);
  const scale = 1 / Math.sqrt(d);
  for (let t = 0; t < T; t++) {
    const qpos = past + t;
    for (let h = 0; h < n; h++) {
      const q = t * 3 * H + h * 3 * d;
      let m = -Infinity;
      for (let j = 0; j <= qpos; j++) {
        let s = 0;
        for (let z = 0; z < d; z++) s += qkv[q + z] * kc[j * H + h * d + z];
        s = s * scale + bl.slopes[h] * j;
        scores[j] = s;
        if (s > m) m = s;
      }
      let sum = 0;
      for (let j = 0; j <= qpos; j++) sum += scores[j] = Math.exp(scores[j] - m);
      for (let j = 0; j <= qpos; j++) {
        const p = scores[j] / sum;
        for (let z = 0; z < d; z++) attn[t * H + h * d + z] += p * vc[j * H + h * d + z];
      }
    }
  }
  const dense = linear(attn, T, H, bl.denseW, bl.denseB, H);
  for (let i = 0; i < dense.length; i++) dense[i] += x[i];
  const h2 = layerNorm(dense, T, H, bl.ln2w, bl.ln2b, bl.eps);
  const up = linear(h2, T, H, bl.upW, bl.upB, 4 * H);
  for (let i = 0; i < up.length; i++) {
    const v = up[i];
    up[i] = 0.5 * v * (1 + Math.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
  }
  const out = linear(up, T, 4 * H, bl.downW, bl.downB, H);
  for (let i = 0; i < out.length; i++) out[i] += dense[i];
  return out;
}

async function benchBaseline(model: string): Promise<Result> {
  const t0 = performance.now();
  const bl = await loadBaseBlock(model);
  const createMs = performance.now() - t0;
  const H = bl.H;
  const maxLen = 1100;
  const kc = new Float32Array(maxLen * H), vc = new Float32Array(maxLen * H);
  const decode: Record<number, number> = {};
  for (const past of [128, 1024]) {
    // The cache content does not change the cost: fill it with values instead of a slow JS prefill.
    const fill = fakeHidden(1, past, H, 5).data;
    kc.set(fill);
    vc.set(fill);
    const times: number[] = [];
    for (let i = 0; i < 8; i++) {
      const x = fakeHidden(1, 1, H, 20 + i).data;
      const a = performance.now();
      baseStep(bl, x, 1, past, kc, vc);
      times.push(performance.now() - a);
    }
    decode[past] = median(times.slice(1));
  }
  const prefill: Record<number, number> = {};
  for (const t of [128, 512]) {
    const x = fakeHidden(1, t, H, 6).data;
    const a = performance.now();
    baseStep(bl, x, t, 0, kc, vc);
    prefill[t] = t / ((performance.now() - a) / 1000);
  }
  return {
    decode_ms_p128: round(decode[128]),
    decode_ms_p1024: round(decode[1024]),
    prefill_tok_s_128: Math.round(prefill[128]),
    prefill_tok_s_512: Math.round(prefill[512]),
    create_ms: round(createMs, 1),
    rss_mb: Math.round(Deno.memoryUsage().rss / 2 ** 20),
  };
}

// ---------------------------------------------------------------- driver

function table(results: Record<string, Result>): string {
  const base = results.baseline;
  const rows: string[] = [];
  const cols = Object.keys(results);
  rows.push(
    `| metric | ${
      cols.map((c) => c === "baseline" ? "baseline (plain JS fp32)" : `onnxruntime ${c}`).join(" | ")
    } |`,
  );
  rows.push(`|---|${cols.map(() => "---").join("|")}|`);
  const metrics: Array<[keyof Result, string, boolean]> = [
    ["decode_ms_p128", "decode ms/block, past 128", true],
    ["decode_ms_p1024", "decode ms/block, past 1024", true],
    ["prefill_tok_s_128", "prefill tok/s/block, 128", false],
    ["prefill_tok_s_512", "prefill tok/s/block, 512", false],
    ["create_ms", "create ms/block", true],
    ["rss_mb", "RSS MB (process)", true],
  ];
  for (const [k, label, lowerBetter] of metrics) {
    const cells = cols.map((c) => {
      const v = results[c][k];
      if (!base || c === "baseline" || k === "rss_mb" || k === "create_ms") return String(v);
      const ratio = lowerBetter ? base[k] / v : v / base[k];
      return `${v} (${ratio.toFixed(1)}× baseline)`;
    });
    rows.push(`| ${label} | ${cells.join(" | ")} |`);
  }
  return rows.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      model: { type: "string" },
      weights: { type: "string" },
      blocks: { type: "string", default: "8" },
      shape: { type: "string", default: "bloom-560m" },
      json: { type: "boolean", default: false },
      variant: { type: "string" },
    },
  });
  const blocks = Number(values.blocks);
  if (values.variant) {
    // Child process: one variant, one JSON line on stdout.
    const r = values.variant === "baseline"
      ? await benchBaseline(values.model!)
      : await benchOnnx(values.model!, values.variant as "fp32" | "int8", blocks);
    console.log(JSON.stringify(r));
    Deno.exit(0);
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
      await Deno.stat(`${model}/model.safetensors`);
    } catch {
      console.error(`generating ${blocks} ${values.shape}-sized random blocks in ${model} ...`);
      if (values.shape === "qwen3-32b") await makeQwen3_32bBlocks(model, blocks);
      else await makeBloom560mBlocks(model, blocks);
    }
  }
  const cfg = JSON.parse(await Deno.readTextFile(`${model}/config.json`));
  // the plain-JS baseline implements the BLOOM block only
  const baseline = cfg.model_type === "bloom" ? ["baseline"] : [];
  const loadBefore = Deno.loadavg()[0];
  const variants = values.weights ? [values.weights, ...baseline] : ["fp32", "int8", ...baseline];
  const results: Record<string, Result> = {};
  for (const v of variants) {
    if (!values.json) console.error(`measuring ${v} ...`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--quiet",
        new URL(import.meta.url).pathname,
        "--variant",
        v,
        "--model",
        model,
        "--blocks",
        String(blocks),
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (out.code !== 0) {
      console.error(`variant ${v} failed (exit ${out.code})`);
      Deno.exit(1);
    }
    const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
    results[v] = JSON.parse(lines[lines.length - 1]);
  }
  if (values.json) console.log(JSON.stringify(results));
  else {
    const shape = cfg.model_type === "bloom"
      ? `hidden ${cfg.hidden_size ?? cfg.n_embed}, ${cfg.n_head} heads`
      : `hidden ${cfg.hidden_size}, ${cfg.num_attention_heads} query / ${cfg.num_key_value_heads} KV heads of ${
        cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads
      }, intermediate ${cfg.intermediate_size}`;
    console.log(
      `${cfg.model_type} blocks (${shape}), ${blocks} blocks in one session, 2 intra-op threads, spinning off`,
    );
    console.log(
      `machine: ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}; ` +
        `load average ${loadBefore.toFixed(2)} before, ${
          Deno.loadavg()[0].toFixed(2)
        } after (other processes slow every column)`,
    );
    console.log(table(results));
  }
}
