/**
 * Measures a lite-tier-shaped node: `plumise serve --offline` serving 2 int8 blocks of a
 * bloom-560m-sized random checkpoint (hidden 1024, 16 heads). Reports the time from process start
 * and from `node.start()` to `node online`, and the process RSS once online (before any generation:
 * the client head loads on the first request). Runs the node `--runs` times; the first run fills
 * the throughput cache, later runs are warm.
 *
 *   deno run -A scripts/measure_node.ts [--runs 3] [--layers 4] [--dir /tmp/plumise-measure] [--json]
 * @module
 */
import { parseArgs } from "node:util";
import { BINARY_PERMISSIONS } from "../lib/cli/permissions.ts";
import { BINARY_V8_FLAGS } from "../lib/cli/v8_flags.ts";
import { makeBloom560mBlocks } from "./fixtures.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    runs: { type: "string", default: "3" },
    layers: { type: "string", default: "4" },
    dir: { type: "string", default: `${Deno.env.get("TMPDIR") ?? "/tmp"}/plumise-measure` },
    json: { type: "boolean", default: false },
  },
});
const root = values.dir!;
const ckpt = `${root}/bloom-560m-sized`;
const main = new URL("../main.ts", import.meta.url).pathname;
const config = new URL("../deno.json", import.meta.url).pathname;

try {
  await Deno.stat(`${ckpt}/config.json`);
} catch {
  await makeBloom560mBlocks(ckpt, Number(values.layers));
}

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

interface Run {
  run: number;
  processToOnlineMs: number;
  startToOnlineMs: number;
  rssMiB: number;
  exitCode: number;
  phases: string[];
}

const results: Run[] = [];
for (let i = 1; i <= Number(values.runs); i++) {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--config",
      config,
      ...BINARY_V8_FLAGS,
      ...BINARY_PERMISSIONS,
      main,
      "serve",
      "--offline",
      "--tier",
      "lite",
    ],
    env: {
      MODEL_NAME: ckpt,
      NUM_BLOCKS: "2",
      BLOCK_INDICES: "0:2",
      WEIGHTS: "int8",
      PLUMISE_DATA_DIR: `${root}/data`,
      HF_HOME: `${root}/hf`,
      API_HOST: "127.0.0.1",
      API_PORT: "0",
      PETALS_HOST: "127.0.0.1",
      PETALS_PORT: "0",
      LOG_JSON: "true",
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let online: Record<string, unknown> | undefined;
  while (!online) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the node exited before going online:\n${buf.slice(-3000)}`);
    buf += value;
    for (const line of buf.split("\n")) {
      if (line.includes('"node online"')) online = JSON.parse(line);
    }
  }
  const processToOnlineMs = Math.round(performance.now() - t0);
  const rss = rssMiB(child.pid);
  const phases = buf.split("\n").filter((l) => l.includes('"part":"node"')).map((l) => JSON.parse(l))
    .filter((r) => typeof r.ms === "number").map((r) => `${r.msg} ${r.ms}`);
  child.kill("SIGTERM");
  // keep draining stderr so the node can log its shutdown
  const drained = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const status = await child.status;
  await drained;
  results.push({
    run: i,
    processToOnlineMs,
    startToOnlineMs: Number(online.msSinceStart),
    rssMiB: rss,
    exitCode: status.code,
    phases,
  });
}

if (values.json) console.log(JSON.stringify(results));
else {
  console.log("run  process→online ms  start()→online ms  RSS MiB  exit");
  for (const r of results) {
    console.log(
      `${String(r.run).padStart(3)}  ${String(r.processToOnlineMs).padStart(17)}  ${
        String(r.startToOnlineMs).padStart(17)
      }  ${String(r.rssMiB).padStart(7)}  ${r.exitCode}`,
    );
    console.log(`     phases (ms): ${r.phases.join(", ")}`);
  }
}
