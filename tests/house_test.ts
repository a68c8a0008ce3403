/** Keeps the house consistent: one permission set, one version, no JSR imports, README table = config schema. */
import assert from "node:assert/strict";
import { BINARY_PERMISSIONS } from "../lib/cli/permissions.ts";
import { SCHEMA } from "../lib/config/schema.ts";
import { VERSION } from "../lib/util/version.ts";
import { compileArgs, TARGETS } from "../scripts/compile.ts";
import { configTable } from "../scripts/config_table.ts";
import { REPO_ROOT } from "./helpers/cli.ts";

const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));

Deno.test("house: deno.json serve and plumise tasks run with exactly the binary's permissions", () => {
  const serve: string = denoJson.tasks.serve;
  const flags = serve.split(/\s+/).filter((a) => a.startsWith("--allow"));
  assert.deepEqual(flags, [...BINARY_PERMISSIONS]);
  assert.ok(!/\s-A\b|--allow-all/.test(serve));
  assert.match(serve, /main\.ts serve --tier lite$/);
  const plumise: string = denoJson.tasks.plumise;
  assert.deepEqual(plumise.split(/\s+/).filter((a) => a.startsWith("--allow")), [...BINARY_PERMISSIONS]);
  assert.match(plumise, /^deno run .* main\.ts$/);
});

Deno.test("house: compile covers five targets with the same permissions and no -A", () => {
  assert.deepEqual(TARGETS.map((t) => t.triple).sort(), [
    "aarch64-apple-darwin",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
  ]);
  for (const t of TARGETS) {
    const args = compileArgs(t, { includes: [], excludes: [] });
    for (const p of BINARY_PERMISSIONS) assert.ok(args.includes(p), `${t.triple} lacks ${p}`);
    assert.ok(!args.includes("-A") && !args.includes("--allow-all"));
  }
  // what each binary embeds is checked in scripts/compile_test.ts
});

Deno.test("house: one version", () => {
  assert.equal(denoJson.version, VERSION);
});

Deno.test("house: every dependency is an exactly pinned npm: import; no JSR imports", async () => {
  for (const [name, spec] of Object.entries(denoJson.imports as Record<string, string>)) {
    assert.match(spec, /^npm:(@[^/]+\/)?[^@]+@\d+\.\d+\.\d+$/, `${name} is not pinned exactly: ${spec}`);
  }
  const offenders: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.name === "node_modules" || e.name.startsWith(".")) continue;
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (
        /\.(ts|json)$/.test(e.name) && e.name !== "deno.lock" &&
        (await Deno.readTextFile(p)).includes("jsr" + ":")
      ) offenders.push(p);
    }
  };
  await walk(REPO_ROOT.replace(/\/$/, ""));
  assert.deepEqual(offenders, []);
});

Deno.test("house: the README configuration table is the one generated from the config schema", async () => {
  const readme = await Deno.readTextFile(`${REPO_ROOT}README.md`);
  // compare row by row with cells trimmed (deno fmt pads markdown tables)
  const norm = (line: string) => line.split(/(?<!\\)\|/).map((c) => c.trim().replace(/^-+$/, "-")).join("|");
  const readmeRows = new Set(readme.split("\n").filter((l) => l.startsWith("|")).map(norm));
  const table = configTable().split("\n");
  const missing = table.filter((row) => !readmeRows.has(norm(row)));
  assert.deepEqual(
    missing,
    [],
    "README.md's configuration table is out of date: replace it with the output of `deno run scripts/config_table.ts`",
  );
  for (const spec of SCHEMA.filter((s) => s.env)) assert.ok(table.some((r) => r.includes(`\`${spec.env}\``)));
});
