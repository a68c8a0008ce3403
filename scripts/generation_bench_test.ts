import assert from "node:assert/strict";
import {
  generationBenchArgs,
  median,
  positiveInts,
  stepSessionOver,
  thirds,
  tokensPerSecond,
} from "./generation_bench.ts";

const ok = { tokens: "32", layers: "12", heads: "16", "head-dim": "64", threads: "2", runs: "5" };

Deno.test("generation bench: numeric options are checked, naming the flag and the value", () => {
  assert.deepEqual(generationBenchArgs(ok), {
    tokens: 32,
    layers: 12,
    heads: 16,
    headDim: 64,
    threads: 2,
    runs: 5,
  });
  assert.throws(() => generationBenchArgs({ ...ok, tokens: "0" }), /--tokens must be an integer ≥ 1, got 0/);
  assert.throws(
    () => generationBenchArgs({ ...ok, "head-dim": "6.5" }),
    /--head-dim must be an integer ≥ 1, got 6.5/,
  );
  assert.throws(() => generationBenchArgs({ ...ok, runs: "x" }), /--runs must be an integer ≥ 1, got NaN/);
  assert.throws(
    () => generationBenchArgs({ ...ok, layers: "2" }),
    /--layers must be ≥ 3 \(three spans\), got 2/,
  );
});

Deno.test("generation bench: thirds, tokens/s and the median", () => {
  assert.deepEqual(thirds(12), [0, 4, 8, 12]);
  assert.deepEqual(thirds(3), [0, 1, 2, 3]);
  assert.deepEqual(thirds(10), [0, 3, 7, 10]);
  assert.equal(tokensPerSecond({ tokenIds: [1, 2, 3, 4], prefillMs: 100, decodeMs: 300 } as never), 10);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 3);
});

Deno.test("generation bench: a step session over a driver counts positions and flags the fresh step", async () => {
  const calls: [number, boolean][] = [];
  const s = stepSessionOver((h, fresh) => {
    calls.push([h.shape[1], fresh]);
    return Promise.resolve(h);
  });
  const x = (t: number) => ({ data: new Float32Array(t * 2), shape: [1, t, 2] as [number, number, number] });
  assert.equal(s.position, 0);
  assert.equal(s.maxLength, 512);
  const prompt = x(5);
  assert.equal(await s.step(prompt), prompt, "the driver's output is the step's");
  await s.step(x(1));
  await s.step(x(1));
  assert.equal(s.position, 7);
  assert.deepEqual(calls, [[5, true], [1, false], [1, false]]);
});

Deno.test("positiveInts: the named flags as integers ≥ 1; a bad one is named with its text", () => {
  // as parseArgs gives them: other flags (a boolean) beside the named ones
  const parsed: Record<string, string | boolean> = { tokens: "8000", rounds: "2", json: true };
  assert.deepEqual(positiveInts(parsed, ["tokens", "rounds"]), {
    tokens: 8000,
    rounds: 2,
  });
  for (const bad of ["0", "-1", "1.5", "x", ""]) {
    assert.throws(
      () => positiveInts({ tokens: "1", rounds: bad }, ["tokens", "rounds"]),
      (e: unknown) => e instanceof RangeError && e.message === `--rounds must be an integer ≥ 1, got ${bad}`,
    );
  }
});
