import assert from "node:assert/strict";
import { type Clock, gapLabel, measureGaps, parseGaps, withPenalties } from "./bench_idle.ts";

Deno.test("bench idle: gaps parse to hot plus a sleep and a busy wait each, bad ones name the flag", () => {
  assert.deepEqual(parseGaps("3,15").map(gapLabel), ["hot", "sleep_3", "spin_3", "sleep_15", "spin_15"]);
  assert.deepEqual(parseGaps(" 0.5 ").map(gapLabel), ["hot", "sleep_0.5", "spin_0.5"]);
  for (const bad of ["", "3,", "0", "-1", "x", "3,,15"]) {
    assert.throws(() => parseGaps(bad), (err: Error) => {
      assert.ok(err instanceof RangeError);
      assert.equal(
        err.message,
        `--gaps must be comma-separated milliseconds > 0 (e.g. 3,15), got ${JSON.stringify(bad)}`,
      );
      return true;
    });
  }
});

/**
 * A virtual machine for `measureGaps`: each clock read passes 0.25 ms (so a busy wait ends), a
 * sleep passes its length, and the probe costs 3 ms after a sleep, 1.5 ms after a longer gap
 * without one (a busy wait) and 1 ms right after the previous run.
 */
function virtualMachine() {
  let now = 0, lastEnd = 0, slept = false, runs = 0;
  const sleeps: number[] = [];
  const clock: Clock = {
    now: () => (now += 0.25) - 0.25,
    sleep: (ms) => {
      sleeps.push(ms);
      now += ms;
      slept = true;
      return Promise.resolve();
    },
  };
  const probe = () => {
    runs++;
    // lastEnd is the read that ended the previous timing: a hot run follows the timing's own read
    now += slept ? 3 : now - lastEnd > 0.5 ? 1.5 : 1;
    slept = false;
    lastEnd = now + 0.25;
  };
  return { clock, probe, sleeps, runs: () => runs };
}

Deno.test("bench idle: each gap's runs are timed right after that gap; medians per gap", async () => {
  const vm = virtualMachine();
  const gaps = parseGaps("2");
  let series = 0;
  const r = await measureGaps(vm.probe, gaps, {
    steps: 4,
    rounds: 3,
    warmup: 2,
    fresh: () => series++,
  }, vm.clock);
  assert.equal(vm.runs(), 2 + 3 * 4 * gaps.length);
  assert.equal(series, 3 * gaps.length); // a fresh state before every series
  assert.deepEqual(vm.sleeps, Array(3 * 4).fill(2)); // sleep_2: 4 runs in each of 3 rounds
  // the timing itself reads the clock once after the run: 0.25 ms on top of each cost
  assert.deepEqual(r, { hot: 1.25, sleep_2: 3.25, spin_2: 1.75 });
});

Deno.test("bench idle: penalties are each gap's time over hot, rounded", () => {
  assert.deepEqual(withPenalties({ hot: 2, sleep_15: 3.5, spin_15: 2.10004 }), {
    hot: 2,
    sleep_15: 3.5,
    spin_15: 2.1,
    penalty_sleep_15: 1.75,
    penalty_spin_15: 1.05,
  });
});
