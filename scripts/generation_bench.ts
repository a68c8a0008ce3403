/**
 * What the generation benchmarks (bench:swarm, bench topology) share, so that they measure the
 * same model the same way: the command-line options and their checks, the generated model, the cut
 * into three spans, the tokens/s of a generation, the median, and a step session over a driver of
 * span processes (the floors).
 * @module
 */
import type { HiddenStates } from "../lib/runtime/types.ts";
import type { GenerationResult, StepSession } from "../lib/swarm/client/generate_text.ts";
import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";

/** `parseArgs` options both benchmarks take (each adds `runs` with its own default, and its own). */
export const GENERATION_BENCH_OPTIONS = {
  json: { type: "boolean", default: false },
  tokens: { type: "string", default: "32" },
  layers: { type: "string", default: "12" },
  heads: { type: "string", default: "16" },
  "head-dim": { type: "string", default: "64" },
  threads: { type: "string", default: "2" },
  prompt: { type: "string", default: "hello world, this is a benchmark of the swarm" },
} as const;

export interface GenerationBenchArgs {
  tokens: number;
  layers: number;
  heads: number;
  headDim: number;
  threads: number;
  runs: number;
}

/**
 * The numeric options, checked: each an integer ≥ 1, and at least 3 layers (three spans).
 * Throws `RangeError` naming the flag and the value.
 */
export function generationBenchArgs(values: {
  tokens: string;
  layers: string;
  heads: string;
  "head-dim": string;
  threads: string;
  runs: string;
}): GenerationBenchArgs {
  const n: GenerationBenchArgs = {
    tokens: Number(values.tokens),
    layers: Number(values.layers),
    heads: Number(values.heads),
    headDim: Number(values["head-dim"]),
    threads: Number(values.threads),
    runs: Number(values.runs),
  };
  for (const [k, v] of Object.entries(n)) {
    const flag = k === "headDim" ? "head-dim" : k;
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`--${flag} must be an integer ≥ 1, got ${v}`);
  }
  if (n.layers < 3) throw new RangeError(`--layers must be ≥ 3 (three spans), got ${n.layers}`);
  return n;
}

/** The flags `names` of `values` as integers ≥ 1; a `RangeError` naming the flag and its text otherwise. */
export function positiveInts<K extends string>(
  values: Partial<Record<K, string | boolean>>,
  names: readonly K[],
): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const k of names) {
    const v = Number(values[k]);
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`--${k} must be an integer ≥ 1, got ${values[k]}`);
    }
    out[k] = v;
  }
  return out;
}

/** Runs a command-line check; its error (a `RangeError` naming the flag) is printed, and the script exits 2. */
export function argsOrExit<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    console.error((err as Error).message);
    Deno.exit(2);
  }
}

/** The benchmarks' model: a generated BLOOM-style fp32 checkpoint (same seed, same weights each time). */
export function makeBenchModel(n: GenerationBenchArgs): ReturnType<typeof makeBloomCheckpoint> {
  return makeBloomCheckpoint({
    numLayers: n.layers,
    numHeads: n.heads,
    headDim: n.headDim,
    dtype: "F32",
    shards: 1,
    scale: 0.3,
    seed: 11,
  });
}

/** Block boundaries of three spans over `layers` blocks: span i is `[cuts[i], cuts[i + 1])`. */
export function thirds(layers: number): number[] {
  return [0, Math.round(layers / 3), Math.round((2 * layers) / 3), layers];
}

/** New tokens per second over a whole generation, prefill included. */
export function tokensPerSecond(r: GenerationResult): number {
  return r.tokenIds.length / ((r.prefillMs + r.decodeMs) / 1000);
}

/** The median (the upper one for an even count). */
export function median(xs: readonly number[]): number {
  return [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
}

/** A step session over `step`, which is told whether a step starts a fresh sequence (position 0). */
export function stepSessionOver(
  step: (hidden: HiddenStates, fresh: boolean) => Promise<HiddenStates>,
  maxLength = 512,
): StepSession {
  let position = 0;
  return {
    get position() {
      return position;
    },
    maxLength,
    step: async (h) => {
      const y = await step(h, position === 0);
      position += h.shape[1];
      return y;
    },
  };
}
