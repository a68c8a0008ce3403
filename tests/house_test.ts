/**
 * Keeps the house consistent: one permission set, one version, no JSR imports, the generated tables
 * of docs/ in step with their sources, test doubles only in lib/testing/.
 */
import assert from "node:assert/strict";
import { BINARY_PERMISSIONS } from "../lib/cli/permissions.ts";
import { BINARY_V8_FLAGS } from "../lib/cli/v8_flags.ts";
import { SCHEMA } from "../lib/config/schema.ts";
import { VERSION } from "../lib/util/version.ts";
import { compileArgs, TARGETS } from "../scripts/compile.ts";
import { configTable } from "../scripts/config_table.ts";
import { errorTable } from "../scripts/error_table.ts";
import { REPO_ROOT } from "./helpers/cli.ts";

const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}deno.json`));

Deno.test("house: deno.json serve and plumise tasks run with exactly the binary's permissions and V8 flags", () => {
  const serve: string = denoJson.tasks.serve;
  const flags = serve.split(/\s+/).filter((a) => a.startsWith("--allow"));
  assert.deepEqual(flags, [...BINARY_PERMISSIONS]);
  for (const task of [denoJson.tasks.serve, denoJson.tasks.plumise] as string[]) {
    assert.deepEqual(task.split(/\s+/).filter((a) => a.startsWith("--v8-flags")), [...BINARY_V8_FLAGS], task);
  }
  assert.ok(!/\s-A\b|--allow-all/.test(serve));
  // no --tier: a flag would beat PLUMISE_TIER from the environment or .env (the defaults are lite's)
  assert.match(serve, /main\.ts serve$/);
  const plumise: string = denoJson.tasks.plumise;
  assert.deepEqual(plumise.split(/\s+/).filter((a) => a.startsWith("--allow")), [...BINARY_PERMISSIONS]);
  assert.match(plumise, /^deno run .* main\.ts$/);
});

Deno.test("house: compile covers five targets with the same permissions and V8 flags and no -A", () => {
  assert.deepEqual(TARGETS.map((t) => t.triple).sort(), [
    "aarch64-apple-darwin",
    "aarch64-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
    "x86_64-unknown-linux-gnu",
  ]);
  for (const t of TARGETS) {
    const args = compileArgs(t, { includes: [], excludes: [] });
    for (const p of [...BINARY_V8_FLAGS, ...BINARY_PERMISSIONS]) {
      assert.ok(args.includes(p), `${t.triple} lacks ${p}`);
    }
    assert.ok(!args.includes("-A") && !args.includes("--allow-all"));
  }
  // what each binary embeds is checked in scripts/compile_test.ts
});

Deno.test("house: one version", () => {
  assert.equal(denoJson.version, VERSION);
});

/**
 * The files under `dir` (relative to the repository root, "" for all of it) whose names `keep`
 * accepts, as paths relative to the root; node_modules and dot folders are skipped.
 */
async function filesUnder(dir: string, keep: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${REPO_ROOT}${dir}`)) {
    if (e.name === "node_modules" || e.name.startsWith(".")) continue;
    const p = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await filesUnder(p, keep));
    else if (keep(e.name)) out.push(p);
  }
  return out;
}

Deno.test("house: every dependency is an exactly pinned npm: import; no JSR imports", async () => {
  for (const [name, spec] of Object.entries(denoJson.imports as Record<string, string>)) {
    assert.match(spec, /^npm:(@[^/]+\/)?[^@]+@\d+\.\d+\.\d+$/, `${name} is not pinned exactly: ${spec}`);
  }
  const offenders: string[] = [];
  for (const p of await filesUnder("", (name) => /\.(ts|json)$/.test(name) && name !== "deno.lock")) {
    if ((await Deno.readTextFile(`${REPO_ROOT}${p}`)).includes("jsr" + ":")) offenders.push(p);
  }
  assert.deepEqual(offenders, []);
});

/** A markdown table row with its cells trimmed (deno fmt pads markdown tables). */
const normRow = (line: string) => line.split(/(?<!\\)\|/).map((c) => c.trim().replace(/^-+$/, "-")).join("|");
/** Every table row of a markdown text, normalised. */
const tableRows = (text: string) => new Set(text.split("\n").filter((l) => l.startsWith("|")).map(normRow));

Deno.test("house: docs/configuration.md's table is the one generated from the config schema", async () => {
  const docRows = tableRows(await Deno.readTextFile(`${REPO_ROOT}docs/configuration.md`));
  const table = configTable().split("\n");
  const missing = table.filter((row) => !docRows.has(normRow(row)));
  assert.deepEqual(
    missing,
    [],
    "docs/configuration.md's table is out of date: replace it with the output of `deno run scripts/config_table.ts`",
  );
  for (const spec of SCHEMA.filter((s) => s.env)) assert.ok(table.some((r) => r.includes(`\`${spec.env}\``)));
});

Deno.test("house: docs/operations.md's error code table is the one generated from the registry", async () => {
  const docRows = tableRows(await Deno.readTextFile(`${REPO_ROOT}docs/operations.md`));
  const missing = errorTable().split("\n").filter((row) => !docRows.has(normRow(row)));
  assert.deepEqual(
    missing,
    [],
    "docs/operations.md's error codes are out of date: replace the table with `deno run scripts/error_table.ts`",
  );
});

/** Every non-test .ts file under `dir` (relative to the repository root). */
function sourceFiles(dir: string): Promise<string[]> {
  return filesUnder(dir, (name) => name.endsWith(".ts") && !name.endsWith("_test.ts"));
}

/** The relative specifiers a module imports or re-exports, statically or dynamically. */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) specs.push(m[1]);
  return specs;
}

Deno.test("house: test doubles live in lib/testing/, which no production module imports", async () => {
  const offenders: string[] = [];
  const production = [...await sourceFiles("lib"), "main.ts", "mod.ts"].filter((f) =>
    !f.startsWith("lib/testing/")
  );
  for (const file of production) {
    for (const spec of relativeImports(await Deno.readTextFile(`${REPO_ROOT}${file}`))) {
      const target = new URL(spec, `file://${REPO_ROOT}${file}`).pathname.slice(REPO_ROOT.length);
      if (target.startsWith("lib/testing/")) offenders.push(`${file} imports ${spec}`);
    }
  }
  assert.deepEqual(offenders, []);
  // the check itself sees imports: a test file of lib/ imports the entry point
  assert.ok(
    relativeImports(await Deno.readTextFile(`${REPO_ROOT}lib/swarm/swarm_server_test.ts`))
      .some((s) => s.endsWith("/testing/mod.ts")),
  );
  // no fakes left beside the production code
  const leftovers = (await sourceFiles("lib")).filter((f) =>
    !f.startsWith("lib/testing/") && /(^|\/)_?(fake|test)_[^/]*\.ts$|_test_helpers\.ts$/.test(f)
  );
  assert.deepEqual(leftovers, []);
});

Deno.test("house: the library's module graph (mod.ts, main.ts) holds nothing of lib/testing/", async () => {
  for (const entry of ["mod.ts", "main.ts"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", `${REPO_ROOT}deno.json`, `${REPO_ROOT}${entry}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: { specifier: string }[] };
    const local = graph.modules.map((m) => m.specifier).filter((s) => s.startsWith(`file://${REPO_ROOT}`));
    assert.ok(local.some((s) => s.endsWith("/lib/errors.ts")), `${entry}'s graph was not read`);
    assert.deepEqual(local.filter((s) => s.includes("/lib/testing/")), [], `${entry} reaches lib/testing/`);
  }
});

Deno.test("house: no file under lib/ is longer than 500 lines", async () => {
  const tooLong: string[] = [];
  for (const p of await filesUnder("lib", (name) => name.endsWith(".ts"))) {
    const lines = (await Deno.readTextFile(`${REPO_ROOT}${p}`)).split("\n").length - 1;
    if (lines > 500) tooLong.push(`${p}: ${lines} lines`);
  }
  assert.deepEqual(tooLong, [], "split these into parts with one job each");
});

Deno.test("house: code cites docs/, never files outside the repository; the README stays short", async () => {
  const outside = /\.\.\/shared\/|\bshared\/(design|reference)\//;
  const offenders: string[] = [];
  for (const dir of ["lib", "scripts", "tests", "docs"]) {
    for (const p of await filesUnder(dir, (name) => /\.(ts|md|sh|yml)$/.test(name))) {
      if (p === "tests/house_test.ts") continue;
      if (outside.test(await Deno.readTextFile(`${REPO_ROOT}${p}`))) offenders.push(p);
    }
  }
  assert.deepEqual(offenders, [], "cite the project's own docs/ instead");
  assert.ok(outside.test("see ../shared/design/swarm.md"), "the pattern matches what it refuses");
  const readme = (await Deno.readTextFile(`${REPO_ROOT}README.md`)).split("\n").length - 1;
  assert.ok(
    readme <= 250,
    `README.md has ${readme} lines; keep it for users, short (the rest goes to docs/)`,
  );
});
