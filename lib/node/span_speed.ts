/**
 * How fast this machine runs a span, measured the way a pipeline uses it.
 *
 * A server in a swarm does not decode back to back: in a route of k servers it waits for the
 * other k − 1 between two steps of a session. On some machines a multi-threaded step after such a
 * wait takes up to twice as long as one that follows another step at once (on the VM of
 * docs/benchmarks.md the scheduler put the woken pool thread on the caller's vCPU until the runtime pinned its threads,
 * lib/runtime/_cpu_affinity.ts; CPUs that drop their clock do it too; `deno task bench idle`
 * measures it). So the decode rate is timed both ways, in alternating
 * rounds: a pipelined step after a wait of `gapFactor` × the hot step time, then untimed steps
 * for `settleMs`, then a hot step right after another step. The announced rate is the slower of
 * the two medians: what the server really sustains inside a route.
 * @module
 */
import { RuntimeError } from "../errors.ts";
import { sleep as sleepFor } from "../util/abort.ts";
import { withDefaults } from "../util/with_defaults.ts";

/** The steps the measurement runs (one session; the stepper keeps its cache). */
export interface SpanStepper {
  /** Runs `tokens` prompt positions through the span in one step. */
  prefill(tokens: number, options: { signal: AbortSignal }): Promise<void>;
  /** Runs one new position through the span. */
  decode(options: { signal: AbortSignal }): Promise<void>;
}

export interface SpanSpeedOptions {
  /** Prompt positions of the timed prefill (default 64). */
  readonly prefillTokens?: number;
  /** Untimed decode steps before the rounds, at least 2 (default 3): all but the first set the gap. */
  readonly warmupSteps?: number;
  /** Rounds; each times one pipelined and one hot step (default 8). */
  readonly rounds?: number;
  /** Untimed steps between them run for at least this long (default 40 ms)… */
  readonly settleMs?: number;
  /** …but at least 1 and at most this many (default 8). */
  readonly maxSettleSteps?: number;
  /** The wait before a pipelined step, as a multiple of the hot step time (default 2: a route of 3). */
  readonly gapFactor?: number;
  /** Bounds of that wait in ms (default 1 and 250). */
  readonly minGapMs?: number;
  readonly maxGapMs?: number;
  readonly signal: AbortSignal;
  /** Clock and sleep (tests pass virtual ones). */
  readonly now?: () => number;
  readonly sleep?: (ms: number, options: { signal: AbortSignal }) => Promise<void>;
}

export interface SpanSpeed {
  readonly prefillTokensPerSecond: number;
  /** Median decode step right after another step (ms). */
  readonly hotStepMs: number;
  /** Median decode step after the pipeline's wait (ms). */
  readonly pipelinedStepMs: number;
  /** The wait before each pipelined step (ms). */
  readonly gapMs: number;
  /** pipelined ÷ hot. */
  readonly idlePenalty: number;
  /** The decode rate to announce: 1000 ÷ the slower median. */
  readonly decodeStepsPerSecond: number;
}

const DEFAULTS = {
  prefillTokens: 64,
  warmupSteps: 3,
  rounds: 8,
  settleMs: 40,
  maxSettleSteps: 8,
  gapFactor: 2,
  minGapMs: 1,
  maxGapMs: 250,
};

/** The most decode positions a measurement with these options adds after its prefill (for the session's length). */
export function decodeStepsOf(options: Omit<SpanSpeedOptions, "signal"> = {}): number {
  const o = withDefaults(DEFAULTS, options);
  // each round: the pipelined step, the settling steps, the timed hot step
  return o.warmupSteps + o.rounds * (2 + o.maxSettleSteps);
}

/** The most positions a measurement with these options runs: its prefill and its decode steps (for the session's length). */
export function positionsOf(options: Omit<SpanSpeedOptions, "signal"> = {}): number {
  return withDefaults(DEFAULTS, options).prefillTokens + decodeStepsOf(options);
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function checkOptions(o: typeof DEFAULTS): void {
  const positive = ["gapFactor", "maxGapMs"] as const;
  for (const k of positive) {
    if (!(Number.isFinite(o[k]) && o[k] > 0)) {
      throw new RuntimeError("BAD_MEASUREMENT", `span speed: ${k} must be > 0, got ${o[k]}`, {
        hint: "pass a positive number or leave it out for the default",
      });
    }
  }
  const counts = [
    ["prefillTokens", o.prefillTokens, 1],
    ["warmupSteps", o.warmupSteps, 2],
    ["rounds", o.rounds, 1],
    ["maxSettleSteps", o.maxSettleSteps, 1],
  ] as const;
  for (const [k, v, min] of counts) {
    if (!(Number.isInteger(v) && v >= min)) {
      throw new RuntimeError("BAD_MEASUREMENT", `span speed: ${k} must be an integer ≥ ${min}, got ${v}`, {
        hint:
          "steps are whole steps; the warm-up needs 2: its first step pays one-off costs, the rest set the gap",
      });
    }
  }
  if (!(o.settleMs >= 0)) {
    throw new RuntimeError("BAD_MEASUREMENT", `span speed: settleMs must be ≥ 0, got ${o.settleMs}`, {
      hint: "e.g. settleMs 40",
    });
  }
  if (!(o.minGapMs >= 0 && o.minGapMs <= o.maxGapMs)) {
    throw new RuntimeError(
      "BAD_MEASUREMENT",
      `span speed: the gap bounds ${o.minGapMs}..${o.maxGapMs} ms are not 0 ≤ min ≤ max`,
      { hint: "e.g. minGapMs 1, maxGapMs 250" },
    );
  }
}

/** Measures prefill and decode speed through `stepper` (see the module doc). */
export async function measureSpanSpeed(stepper: SpanStepper, options: SpanSpeedOptions): Promise<SpanSpeed> {
  const o = withDefaults(DEFAULTS, options);
  checkOptions(o);
  const { signal } = options;
  const now = options.now ?? (() => performance.now());
  const sleep = options.sleep ?? sleepFor;
  const timed = async (run: () => Promise<void>) => {
    const t0 = now();
    await run();
    return now() - t0;
  };

  const prefillMs = await timed(() => stepper.prefill(o.prefillTokens, { signal }));
  const warm: number[] = [];
  for (let i = 0; i < o.warmupSteps; i++) warm.push(await timed(() => stepper.decode({ signal })));
  // the gap follows the hot step time estimated from the warm-up (its best step after the first,
  // which pays one-off costs)
  const estimate = Math.min(...warm.slice(1));
  const gapMs = Math.min(o.maxGapMs, Math.max(o.minGapMs, o.gapFactor * estimate));
  const hot: number[] = [];
  const pipelined: number[] = [];
  for (let r = 0; r < o.rounds; r++) {
    await sleep(gapMs, { signal });
    pipelined.push(await timed(() => stepper.decode({ signal })));
    // untimed steps let a slow resume pass, then the hot step is timed right after another step
    const settleFrom = now();
    for (let i = 0; i < o.maxSettleSteps && (i === 0 || now() - settleFrom < o.settleMs); i++) {
      await stepper.decode({ signal });
    }
    hot.push(await timed(() => stepper.decode({ signal })));
  }
  const hotStepMs = median(hot);
  const pipelinedStepMs = median(pipelined);
  const slower = Math.max(hotStepMs, pipelinedStepMs, 1e-3);
  return {
    prefillTokensPerSecond: o.prefillTokens / Math.max(1e-6, prefillMs / 1000),
    hotStepMs,
    pipelinedStepMs,
    gapMs,
    idlePenalty: pipelinedStepMs / Math.max(1e-6, hotStepMs),
    decodeStepsPerSecond: 1000 / slower,
  };
}
