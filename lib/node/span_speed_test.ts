import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { decodeStepsOf, measureSpanSpeed, positionsOf, type SpanStepper } from "./span_speed.ts";

/**
 * A span on a virtual clock: a decode step takes `hotMs`, or `resumeMs` when it starts less than
 * `slowForMs` after the end of a sleep (the idle penalty; default: only the first step after it);
 * the prefill takes `prefillMs`. Records what ran.
 */
function virtualSpan(
  o: { hotMs: number; resumeMs: number; prefillMs: number; firstStepMs?: number; slowForMs?: number },
) {
  let t = 0;
  let slept = false;
  let wokeAt = -Infinity;
  const log: string[] = [];
  const stepper: SpanStepper = {
    prefill(tokens) {
      log.push(`prefill ${tokens}`);
      t += o.prefillMs;
      return Promise.resolve();
    },
    decode() {
      const first = !log.some((e) => e === "decode");
      log.push("decode");
      const slow = slept || t - wokeAt < (o.slowForMs ?? 0);
      t += first && o.firstStepMs !== undefined ? o.firstStepMs : slow ? o.resumeMs : o.hotMs;
      slept = false;
      return Promise.resolve();
    },
  };
  const sleep = (ms: number, { signal }: { signal: AbortSignal }) => {
    if (signal.aborted) return Promise.reject(signal.reason);
    log.push(`sleep ${ms}`);
    t += ms;
    slept = true;
    wokeAt = t;
    return Promise.resolve();
  };
  return { stepper, sleep, now: () => t, log };
}

Deno.test("span speed: times hot and pipelined steps apart and announces the slower", async () => {
  // slow for 30 ms after each wait: the settling steps outlast it, so the hot step is really hot
  const v = virtualSpan({ hotMs: 5, resumeMs: 11, prefillMs: 32, firstStepMs: 40, slowForMs: 30 });
  const s = await measureSpanSpeed(v.stepper, {
    signal: new AbortController().signal,
    now: v.now,
    sleep: v.sleep,
  });
  assert.equal(s.hotStepMs, 5);
  assert.equal(s.pipelinedStepMs, 11);
  assert.equal(s.idlePenalty, 2.2);
  assert.equal(s.decodeStepsPerSecond, 1000 / 11, "the pipelined rate, not the hot one");
  assert.equal(s.gapMs, 10, "2 × the hot step estimated from the warm-up, not from its slow first step");
  assert.equal(s.prefillTokensPerSecond, 64 / 0.032);
  // one prefill, then per round: the pipelined step, settling steps for ≥ 40 ms (11 + 11 + 5 + 5 + 5 + 5), the hot step
  assert.equal(v.log[0], "prefill 64");
  assert.equal(v.log.filter((e) => e === "decode").length, 3 + 8 * (1 + 6 + 1));
  assert.ok(v.log.filter((e) => e === "decode").length <= decodeStepsOf(), "within the session's length");
  assert.equal(
    positionsOf(),
    64 + decodeStepsOf(),
    "the session's length: the prefill and every decode step",
  );
  assert.equal(positionsOf({ prefillTokens: 10, warmupSteps: 2, rounds: 1, maxSettleSteps: 1 }), 10 + 2 + 3);
  assert.equal(v.log.filter((e) => e.startsWith("sleep")).length, 8, "one wait per round");
});

Deno.test("span speed: settling is bounded by maxSettleSteps and is at least one step", async () => {
  const long = virtualSpan({ hotMs: 5, resumeMs: 11, prefillMs: 1, slowForMs: 1000 });
  const s = await measureSpanSpeed(long.stepper, {
    signal: new AbortController().signal,
    now: long.now,
    sleep: long.sleep,
    maxSettleSteps: 2,
  });
  assert.equal(long.log.filter((e) => e === "decode").length, decodeStepsOf({ maxSettleSteps: 2 }));
  assert.equal(s.hotStepMs, 11, "a resume slower than the settling bound shows in the hot steps too");
  const none = virtualSpan({ hotMs: 5, resumeMs: 5, prefillMs: 1 });
  await measureSpanSpeed(none.stepper, {
    signal: new AbortController().signal,
    now: none.now,
    sleep: none.sleep,
    settleMs: 0,
  });
  assert.equal(none.log.filter((e) => e === "decode").length, 3 + 8 * 3);
});

Deno.test("span speed: without an idle penalty the hot rate is announced; the gap is bounded", async () => {
  const v = virtualSpan({ hotMs: 400, resumeMs: 390, prefillMs: 1000 });
  const s = await measureSpanSpeed(v.stepper, {
    signal: new AbortController().signal,
    now: v.now,
    sleep: v.sleep,
    rounds: 3,
    warmupSteps: 2,
  });
  assert.equal(s.gapMs, 250, "a slow span waits at most maxGapMs");
  assert.equal(s.decodeStepsPerSecond, 1000 / 400, "the slower median: a faster resume is not credited");
  assert.ok(s.idlePenalty < 1);
  assert.equal(
    v.log.filter((e) => e === "decode").length,
    2 + 3 * 3,
    "a step longer than settleMs settles in one",
  );
  const fast = virtualSpan({ hotMs: 0.1, resumeMs: 0.1, prefillMs: 1 });
  const f = await measureSpanSpeed(fast.stepper, {
    signal: new AbortController().signal,
    now: fast.now,
    sleep: fast.sleep,
  });
  assert.equal(f.gapMs, 1, "at least minGapMs");
});

Deno.test("span speed: bad options are refused with the value; an abort stops the measurement", async () => {
  const v = virtualSpan({ hotMs: 5, resumeMs: 5, prefillMs: 5 });
  const signal = new AbortController().signal;
  for (
    const [opts, re] of [
      [{ rounds: 0 }, /rounds must be an integer ≥ 1, got 0/],
      [{ gapFactor: Number.NaN }, /gapFactor must be > 0, got NaN/],
      [{ warmupSteps: 1 }, /warmupSteps must be an integer ≥ 2, got 1/],
      [{ maxSettleSteps: 1.5 }, /maxSettleSteps must be an integer ≥ 1, got 1.5/],
      [{ settleMs: -1 }, /settleMs must be ≥ 0, got -1/],
      [{ minGapMs: 300 }, /gap bounds 300\.\.250 ms/],
    ] as const
  ) {
    await assert.rejects(
      measureSpanSpeed(v.stepper, { signal, now: v.now, sleep: v.sleep, ...opts }),
      (e: unknown) => e instanceof RuntimeError && e.code === "BAD_MEASUREMENT" && re.test(e.message),
    );
  }
  assert.equal(v.log.length, 0, "nothing ran");
  const ac = new AbortController();
  const w = virtualSpan({ hotMs: 5, resumeMs: 5, prefillMs: 5 });
  const stepper: SpanStepper = {
    prefill: w.stepper.prefill,
    decode: (s) => {
      if (w.log.filter((e) => e === "decode").length === 4) ac.abort(new Error("stop"));
      return w.stepper.decode(s);
    },
  };
  await assert.rejects(measureSpanSpeed(stepper, { signal: ac.signal, now: w.now, sleep: w.sleep }), /stop/);
  assert.ok(w.log.filter((e) => e === "decode").length < decodeStepsOf(), "it stopped early");
});
