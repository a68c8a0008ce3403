import assert from "node:assert/strict";
import { ConfigError } from "../../errors.ts";
import { applyRepetitionPenalty, argmax, TokenSampler, validateSamplingOptions } from "./token_sampler.ts";

const logits = (...v: number[]) => Float32Array.from(v);

function histogram(s: TokenSampler, l: Float32Array, n: number, ctx: number[] = []): number[] {
  const h = new Array(l.length).fill(0);
  for (let i = 0; i < n; i++) h[s.sample(l, ctx)]++;
  return h;
}

Deno.test("greedy picks the argmax, lowest index on ties, ignores NaN", () => {
  const s = new TokenSampler();
  assert.equal(s.greedy, true);
  assert.equal(s.sample(logits(0.1, 3, -2, 2.9)), 1);
  assert.equal(argmax(logits(1, 5, 5)), 1);
  assert.equal(argmax(logits(NaN, -1, -3)), 1);
  assert.throws(() => argmax(logits()), /empty/);
});

Deno.test("repetition penalty divides positive and multiplies negative logits of seen ids, once each", () => {
  const l = logits(2, -2, 4, 1);
  applyRepetitionPenalty(l, [0, 1, 0, 9], 2);
  assert.deepEqual(Array.from(l), [1, -4, 4, 1]);
  // greedy with a penalty avoids the repeated token
  const s = new TokenSampler({ repetitionPenalty: 3 });
  const base = logits(3, 2.5, 0);
  assert.equal(s.sample(base, []), 0);
  assert.equal(s.sample(base, [0]), 1);
  assert.deepEqual(Array.from(base), [3, 2.5, 0], "input logits are not modified");
});

Deno.test("same seed gives the same samples; temperature sampling follows the softmax", () => {
  const l = logits(Math.log(0.5), Math.log(0.3), Math.log(0.2));
  const a = new TokenSampler({ temperature: 1, seed: 7 });
  const b = new TokenSampler({ temperature: 1, seed: 7 });
  const sa = Array.from({ length: 40 }, () => a.sample(l));
  assert.deepEqual(Array.from({ length: 40 }, () => b.sample(l)), sa);
  const h = histogram(new TokenSampler({ temperature: 1, seed: 1 }), l, 20_000);
  assert.ok(Math.abs(h[0] / 20_000 - 0.5) < 0.02, `p0 ${h[0] / 20_000}`);
  assert.ok(Math.abs(h[1] / 20_000 - 0.3) < 0.02, `p1 ${h[1] / 20_000}`);
  // low temperature sharpens towards the argmax
  const cold = histogram(new TokenSampler({ temperature: 0.1, seed: 1 }), l, 2000);
  assert.ok(cold[0] > 1950, `cold ${cold}`);
});

Deno.test("top-k keeps only the k most likely tokens", () => {
  const l = logits(1, 5, 4, 0, 4.5, -1);
  const h = histogram(new TokenSampler({ temperature: 1, topK: 2, seed: 3 }), l, 3000);
  assert.equal(h[0] + h[2] + h[3] + h[5], 0);
  assert.ok(h[1] > 0 && h[4] > 0);
  assert.ok(h[1] > h[4]);
});

Deno.test("top-p keeps the smallest nucleus reaching p (always at least one token)", () => {
  const l = logits(Math.log(0.05), Math.log(0.6), Math.log(0.25), Math.log(0.1));
  const h = histogram(new TokenSampler({ temperature: 1, topP: 0.8, seed: 5 }), l, 5000);
  assert.equal(h[0] + h[3], 0, `only 0.6 + 0.25 survive: ${h}`);
  assert.ok(Math.abs(h[1] / 5000 - 0.6 / 0.85) < 0.03);
  const one = histogram(new TokenSampler({ temperature: 1, topP: 0.01, seed: 5 }), l, 200);
  assert.equal(one[1], 200);
  // large vocab: the nucleus search widens its threshold correctly
  const big = new Float32Array(50_000).fill(0);
  big[123] = 2;
  const hb = new TokenSampler({ temperature: 1, topP: 0.9999, seed: 9 });
  const seen = new Set(Array.from({ length: 300 }, () => hb.sample(big)));
  assert.ok(seen.size > 100, "a near-1 top-p keeps the long tail");
});

Deno.test("top-k and top-p combine (top-p renormalises over the top-k)", () => {
  const l = logits(Math.log(0.4), Math.log(0.3), Math.log(0.2), Math.log(0.1));
  const h = histogram(new TokenSampler({ temperature: 1, topK: 3, topP: 0.5, seed: 2 }), l, 2000);
  // top-3 renormalised: .444, .333, .222 → nucleus 0.5 = {0, 1}
  assert.equal(h[2] + h[3], 0);
  assert.ok(h[0] > 0 && h[1] > 0);
});

Deno.test("bad sampling options are rejected with every problem listed", () => {
  assert.throws(
    () =>
      validateSamplingOptions({ temperature: -1, topK: 1.5, topP: -0.1, repetitionPenalty: 0, seed: 0.5 }),
    (e) =>
      e instanceof ConfigError && e.code === "SAMPLING_INVALID" && e.problems.length === 5 && e.hint !== "",
  );
  assert.throws(() => new TokenSampler({ topP: 2 }), /topP must be in \[0, 1\], got 2/);
});

Deno.test("top-p 0 is greedy (OpenAI clients send temperature 0 with top_p 0), at any temperature", () => {
  const l = logits(0.1, 2, 1.9, -1);
  for (const temperature of [0, 0.7, 1.5]) {
    const s = new TokenSampler({ temperature, topP: 0, seed: 3 });
    assert.equal(s.greedy, true);
    assert.deepEqual(histogram(s, l, 50), [0, 50, 0, 0]);
  }
});

Deno.test("a temperature so small that the logits overflow picks the argmax, not the last candidate", () => {
  const s = new TokenSampler({ temperature: 1e-40, seed: 1 });
  assert.equal(s.greedy, false);
  assert.deepEqual(histogram(s, logits(0.5, 3, 1, 2), 20), [0, 20, 0, 0]);
  // every logit negative: all overflow to -Infinity (before: "all logits are -Infinity", a 500)
  assert.deepEqual(histogram(s, logits(-3, -1, -2), 20), [0, 20, 0]);
  assert.throws(() => s.sample(logits(-Infinity, NaN)), /all logits are -Infinity or NaN/);
  // a logit of +Infinity wins (the review's case: it threw)
  assert.deepEqual(
    histogram(new TokenSampler({ temperature: 0.7, seed: 1 }), logits(-Infinity, Infinity, -Infinity), 5),
    [
      0,
      5,
      0,
    ],
  );
});
