/**
 * Benchmark entry: `deno task bench <name> [args…]` runs scripts/bench_<name>.ts
 * (runtime: per-block decode/prefill vs a plain baseline; swarm: generation through a
 * loopback swarm vs one process; topology: three span processes chained vs mediated; idle: a decode
 * step hot vs after the cores sat idle). Without a name it lists the benchmarks.
 * @module
 */
const dir = new URL(".", import.meta.url);
const names: string[] = [];
for (const e of Deno.readDirSync(dir)) {
  const m = /^bench_(\w+)\.ts$/.exec(e.name);
  if (m?.[1].endsWith("_test")) continue; // a benchmark's tests, not a benchmark
  if (m) names.push(m[1]);
}
names.sort();
const [name, ...rest] = Deno.args;
if (!name || !names.includes(name)) {
  console.error(`usage: deno task bench <${names.join("|") || "name"}> [args…]`);
  if (name) console.error(`unknown benchmark ${JSON.stringify(name)}`);
  Deno.exit(name ? 2 : 0);
}
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-all", new URL(`bench_${name}.ts`, dir).pathname, ...rest],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
Deno.exit((await child.status).code);
