/** `plumise blocks run` as a subprocess with the binary's permissions, checked against the float64 reference. */
import assert from "node:assert/strict";
import { fakeHidden } from "../lib/testing/mod.ts";
import {
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
  makeQwen3Checkpoint,
} from "./helpers/checkpoint_fixture.ts";
import { runPlumise } from "./helpers/cli.ts";
import {
  maxAbsDiff,
  referenceEmbed,
  referenceLogits,
  referenceSpan,
  toSeq,
} from "./helpers/runtime_reference.ts";

Deno.test("cli: blocks run --steps runs incrementally through the cache and matches the reference", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 3 });
  const dir = await Deno.makeTempDir();
  const x = fakeHidden(2, 5, 64, 4);
  const seq = toSeq(x.data, 2, 5, 64);
  await Deno.writeTextFile(`${dir}/in.json`, JSON.stringify({ hidden: seq }));
  const r = await runPlumise([
    "blocks",
    "run",
    "--model",
    ck.dir,
    "--blocks",
    "1:3",
    "--input",
    `${dir}/in.json`,
    "--output",
    `${dir}/out.json`,
    "--weights",
    "fp32",
    "--steps",
    "3,1,1",
  ], { env: { HF_HOME: dir } });
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(await Deno.readTextFile(`${dir}/out.json`)) as { outputs: number[][][][] };
  assert.deepEqual(out.outputs.map((o) => [o.length, o[0].length, o[0][0].length]), [[2, 3, 64], [2, 1, 64], [
    2,
    1,
    64,
  ]]);
  const ref = referenceSpan(ck, 1, 3, seq);
  const joined = [0, 1].map((b) => out.outputs.flatMap((o) => o[b]));
  assert.ok(maxAbsDiff(joined.flat(2), ref.flat(2)) <= 1e-4);

  /** `plumise blocks run` over block 0 of the checkpoint, with `input` and any further flags. */
  const runBlock0 = (input: string, ...more: string[]) =>
    runPlumise(["blocks", "run", "--model", ck.dir, "--blocks", "0:1", "--input", input, ...more], {
      env: { HF_HOME: dir },
    });

  // Bad input is a usage error (exit 2) naming the problem.
  await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify({ hidden: [[[1, 2], [3]]] }));
  const bad = await runBlock0(`${dir}/bad.json`);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /hidden\[0\]\[1\] does not have 2 values/);

  // An --output nobody can write to is a usage error before the blocks run (it was a raw error after).
  const noDir = await runBlock0(`${dir}/bad.json`, "--output", `${dir}/no/such/out.json`);
  assert.equal(noDir.code, 2, noDir.stderr);
  assert.match(noDir.stderr, /--output .*out\.json: the directory .* does not exist/);
  const steps = await runBlock0(`${dir}/in.json`, "--steps", "2,2");
  assert.equal(steps.code, 2);
  assert.match(steps.stderr, /add up to 4 but the input has 5 tokens/);
  // Wrong hidden size for the model: a runtime error (exit 1) naming both sizes.
  await Deno.writeTextFile(`${dir}/h8.json`, JSON.stringify({ hidden: [[[1, 2, 3, 4, 5, 6, 7, 8]]] }));
  const wrong = await runBlock0(`${dir}/h8.json`, "--weights", "fp32");
  assert.equal(wrong.code, 1, wrong.stderr);
  assert.match(wrong.stderr, /hidden size 8 does not match the model's hidden size 64/);
});

for (const family of ["bloom", "qwen3"] as const) {
  Deno.test(`cli: blocks run --input-ids runs head + all blocks and writes the last logits (${family})`, async () => {
    const ck = family === "bloom"
      ? await makeBloomCheckpoint({ numLayers: 2 })
      : await makeQwen3Checkpoint({ numLayers: 2 });
    const dir = await Deno.makeTempDir();
    const r = await runPlumise([
      "blocks",
      "run",
      "--model",
      ck.dir,
      "--input-ids",
      "5,17,260,33",
      "--weights",
      "fp32",
    ], { env: { HF_HOME: dir } });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { logits: number[][] };
    const hidden = referenceSpan(ck, 0, 2, referenceEmbed(ck, [[5, 17, 260, 33]]));
    const ref = referenceLogits(ck, [hidden[0][3]]);
    assert.equal(out.logits[0].length, ck.config.vocab_size);
    assert.ok(maxAbsDiff(out.logits[0], ref[0]) <= 1e-4);
  });
}

Deno.test("cli: bench measures a span, caches what serve announces, and refuses a span past the model", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 3 });
  const dir = await Deno.makeTempDir();
  const env = { HF_HOME: `${dir}/hf`, PLUMISE_DATA_DIR: `${dir}/data` };
  const r = await runPlumise(
    ["bench", "--model", ck.dir, "--num-blocks", "2", "--weights", "fp32", "--json"],
    { env },
  );
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual([j.start, j.end, j.totalBlocks, j.weights], [0, 2, 3, "fp32"]);
  assert.ok(j.hotStepMs > 0 && j.pipelinedStepMs > 0 && j.gapMs >= 1 && j.prefillTokensPerSecond > 0);
  assert.ok(j.throughput > 0 && j.inferenceRps > 0 && j.forwardRps > 0);
  assert.equal(j.cache, `${dir}/data/throughput.json`);
  const cache = JSON.parse(await Deno.readTextFile(j.cache));
  assert.deepEqual(Object.values(cache), [{
    throughput: j.throughput,
    inferenceRps: j.inferenceRps,
    forwardRps: j.forwardRps,
    networkRps: j.networkRps,
  }]);

  // Human output; a tier's block count past the model's end is cut to its 3 blocks.
  const text = await runPlumise(["bench", "--model", ck.dir, "--tier", "pro", "--weights", "fp32"], { env });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /blocks 0:3 \(3 of 3\), fp32/);
  assert.match(text.stdout, /decode step: [\d.]+ ms right after a step, [\d.]+ ms after a [\d.]+ ms wait/);
  assert.match(text.stdout, new RegExp(`cached in ${dir}/data/throughput.json`));
  assert.equal(
    Object.keys(JSON.parse(await Deno.readTextFile(j.cache))).length,
    2,
    "one entry per span size",
  );

  const overridden = await runPlumise([
    "bench",
    "--model",
    ck.dir,
    "--num-blocks",
    "1",
    "--throughput",
    "7.5",
  ], {
    env,
  });
  assert.equal(overridden.code, 0, overridden.stderr);
  assert.match(overridden.stdout, /serve announces 7.5 tokens\/s instead: THROUGHPUT/);

  // A data directory that cannot be made: the figures are still printed, with why they were not cached.
  await Deno.writeTextFile(`${dir}/a-file`, "");
  const unwritable = await runPlumise(["bench", "--model", ck.dir, "--num-blocks", "1", "--json"], {
    env: { ...env, PLUMISE_DATA_DIR: `${dir}/a-file/data` },
  });
  assert.equal(unwritable.code, 0, unwritable.stderr);
  const u = JSON.parse(unwritable.stdout);
  assert.ok(u.throughput > 0);
  assert.equal(u.cache, null);
  assert.match(u.cacheError, /a-file/);

  // A cache budget too small to measure in is a configuration error naming what it needs.
  const small = await runPlumise(["bench", "--model", ck.dir, "--num-blocks", "2", "--cache-tokens", "100"], {
    env,
  });
  assert.equal(small.code, 2, small.stderr);
  assert.match(
    small.stderr,
    /needs 296 cache tokens \(148 positions × 2 blocks\), only 100 are free \(CACHE_TOKENS=100\)/,
  );

  const past = await runPlumise(["bench", "--model", ck.dir, "--block-indices", "2:5"], { env });
  assert.equal(past.code, 2, past.stderr);
  assert.match(past.stderr, /--block-indices 2:5 is past the model's 3 blocks/);
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(ck.dir, { recursive: true });
});
