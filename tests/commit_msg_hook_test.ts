/**
 * The commit-msg hook in .githooks/ (enabled with `git config core.hooksPath .githooks`) holds
 * subjects to `area: what changed` in at most 72 characters.
 */
import assert from "node:assert/strict";

const hook = new URL("../.githooks/commit-msg", import.meta.url).pathname;

async function check(message: string): Promise<{ code: number; stderr: string }> {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(file, message);
    const out = await new Deno.Command("sh", { args: [hook, file], stderr: "piped", stdout: "null" })
      .output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("commit-msg hook: takes a short `area: what` subject and its body", async () => {
  for (
    const ok of [
      "runtime: batch decode steps of ready sessions\n\nWhy, with figures: 4.1x at 8 sessions.\n",
      "bench:runtime: drop an unused import\n",
      "swarm client: split the session\n",
      "# a comment line first\napi: answer 415 for text/plain\n",
      `api: ${"x".repeat(67)}\n`,
    ]
  ) assert.equal((await check(ok)).code, 0, ok);
});

Deno.test("commit-msg hook: refuses a subject over 72 characters, naming its length", async () => {
  const r = await check(`api: ${"x".repeat(68)}\n`);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /73 characters/);
  assert.match(r.stderr, /hint:/);
});

Deno.test("commit-msg hook: refuses a subject without an area", async () => {
  for (const bad of ["fix the thing\n", ": empty area\n", "api:no space\n"]) {
    const r = await check(bad);
    assert.equal(r.code, 1, bad);
    assert.match(r.stderr, /area: /);
  }
});
