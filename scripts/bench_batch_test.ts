import assert from "node:assert/strict";
import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";
import { quantile } from "./bench_batch.ts";

Deno.test("bench batch: quantiles by nearest rank", () => {
  const a = [5, 1, 4, 2, 3];
  assert.equal(quantile(a, 0.5), 3);
  assert.equal(quantile(a, 0.99), 5);
  assert.equal(quantile(a, 0), 1);
  assert.equal(quantile([7], 0.5), 7);
});

Deno.test("bench batch: a tiny run prints one JSON object with the levels in order", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2 });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      new URL("./bench_batch.ts", import.meta.url).pathname,
      "--model",
      ck.dir,
      "--blocks",
      "2",
      "--weights",
      "fp32",
      "--sessions",
      "1,3,8",
      "--steps",
      "3",
      "--past",
      "4",
      "--rounds",
      "2",
      "--json",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  assert.equal(lines.length, 1, "one line: the JSON object");
  const r = JSON.parse(lines[0]);
  assert.deepEqual(Object.keys(r), [
    "sessions",
    "tok_s",
    "p50_ms",
    "p99_ms",
    "mean_batch",
    "speedup_8",
    "p50_ratio_8",
  ]);
  assert.deepEqual(r.sessions, [1, 3, 8]);
  for (const k of ["tok_s", "p50_ms", "p99_ms", "mean_batch"]) {
    assert.equal(r[k].length, 3, k);
    for (const x of r[k]) assert.ok(typeof x === "number" && x > 0, `${k}: ${x}`);
  }
  for (let i = 0; i < 3; i++) assert.ok(r.p99_ms[i] >= r.p50_ms[i]);
  assert.equal(r.mean_batch[0], 1, "one session: batches of one");
  assert.ok(r.mean_batch[2] <= 8);
  assert.equal(r.speedup_8, Math.round((r.tok_s[2] / r.tok_s[0]) * 100) / 100);
  assert.equal(r.p50_ratio_8, Math.round((r.p50_ms[2] / r.p50_ms[0]) * 100) / 100);
});

Deno.test("bench batch: a bad --weights is refused with exit 2", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("./bench_batch.ts", import.meta.url).pathname, "--weights", "int4"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /--weights must be int8 or fp32, got int4/);
});
