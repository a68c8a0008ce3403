import assert from "node:assert/strict";
import { BINARY_V8_FLAGS, MAX_SEMI_SPACE_MIB } from "./v8_flags.ts";

/**
 * Keeps 50 000 objects alive while replacing them 3 million times (every scavenge finds
 * survivors, which is what makes V8 grow a young generation), on the main thread and in a Worker,
 * and prints each isolate's new space in MiB.
 */
const CHURN = `
import { getHeapSpaceStatistics } from "node:v8";
const newSpaceMiB = () => getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 2 ** 20;
function churn() {
  const ring = new Array(50000);
  for (let i = 0; i < 3000000; i++) ring[i % ring.length] = { i, a: [i, i + 1] };
  return newSpaceMiB();
}
if (self.name === "churn") postMessage(churn());
else {
  const main = churn();
  const w = new Worker(import.meta.url, { type: "module", name: "churn" });
  const worker = await new Promise((r) => (w.onmessage = (e) => r(e.data)));
  w.terminate();
  console.log(JSON.stringify({ main, worker }));
}
`;

async function newSpaces(flags: readonly string[]): Promise<{ main: number; worker: number }> {
  const dir = await Deno.makeTempDir({ prefix: "plumise-v8-" });
  try {
    await Deno.writeTextFile(`${dir}/churn.js`, CHURN);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-config", ...flags, "--allow-read", `${dir}/churn.js`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return JSON.parse(new TextDecoder().decode(out.stdout));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The median of three runs' new spaces (a run now and then reads one scavenge's transient size). */
async function medianNewSpaces(flags: readonly string[]): Promise<{ main: number; worker: number }> {
  const runs = [await newSpaces(flags), await newSpaces(flags), await newSpaces(flags)];
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[1];
  return { main: median(runs.map((r) => r.main)), worker: median(runs.map((r) => r.worker)) };
}

Deno.test("v8 flags: the node's young generation stays capped on the main thread and in Workers", async () => {
  const capped = await medianNewSpaces(BINARY_V8_FLAGS);
  // a new space is two semi-spaces
  assert.ok(capped.main <= 2 * MAX_SEMI_SPACE_MIB, `main thread: ${capped.main} MiB`);
  assert.ok(capped.worker <= 2 * MAX_SEMI_SPACE_MIB, `Worker: ${capped.worker} MiB`);
  // what the same churn does without them: the cap is what holds it
  const free = await newSpaces([]);
  assert.ok(free.main > 2 * MAX_SEMI_SPACE_MIB && free.worker > 2 * MAX_SEMI_SPACE_MIB, JSON.stringify(free));
});
