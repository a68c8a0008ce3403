/**
 * Smoke test of a built plumise binary on the machine it is for (the release workflow runs it on
 * each target's own runner):
 *
 *   deno run -A scripts/release_smoke.ts --binary dist/plumise-linux-x64 --target linux-x64 \
 *     [--plan embed-plan.json]
 *
 * 1. `version --json`: the release version and the target's os/arch;
 * 2. `doctor --json --offline` on a generated tiny checkpoint: every check passes, so the
 *    embedded onnxruntime library was copied out of the binary and loads;
 * 3. `blocks run` on that checkpoint: outputs within 1e-4 of the float64 reference;
 * 4. with `--plan` (the compile task's `--dry-run --json` output): the binary's size minus an
 *    empty program compiled for the same target matches the planned embedded bytes, so the
 *    excludes took effect.
 * Exits 1 with the first failure.
 * @module
 */
import { parseArgs } from "node:util";
import { VERSION } from "../lib/util/version.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";
import { maxAbsDiff, referenceSpan, toSeq } from "../tests/helpers/runtime_reference.ts";
import { findTarget } from "./compile_targets.ts";

export interface SmokeOptions {
  binary: string;
  target: string;
  plan?: string;
  log?: (line: string) => void;
}

async function run(binary: string, args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(binary, { args, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

/** Runs the smoke steps; throws with what failed. */
export async function releaseSmoke(o: SmokeOptions): Promise<void> {
  const log = o.log ?? ((l: string) => console.log(l));
  const target = findTarget(o.target);
  check(target !== undefined && !target.refused, `not a buildable target: ${o.target}`);
  const tmp = await Deno.makeTempDir({ prefix: "plumise-smoke-" });
  try {
    const env = {
      XDG_CACHE_HOME: `${tmp}/cache`,
      HF_HOME: `${tmp}/hf`,
      PLUMISE_DATA_DIR: `${tmp}/data`,
      NO_COLOR: "1",
    };

    const v = await run(o.binary, ["version", "--json"], env);
    check(v.code === 0, `version --json exited ${v.code}: ${v.stderr}`);
    const info = JSON.parse(v.stdout);
    check(info.plumise === VERSION, `version ${info.plumise}, expected ${VERSION}`);
    check(
      info.os === target!.os && info.arch === target!.arch,
      `built for ${info.os}/${info.arch}, not ${o.target}`,
    );
    log(`ok version: ${v.stdout.trim()}`);

    const ck = await makeBloomCheckpoint({ dir: `${tmp}/ckpt`, numLayers: 3, shards: 1 });
    const docEnv = {
      ...env,
      MODEL_NAME: ck.dir,
      NUM_BLOCKS: "2",
      PETALS_HOST: "127.0.0.1",
      API_HOST: "127.0.0.1",
      PETALS_PORT: "0",
      DIRECT_PORT: "-1",
      API_PORT: "0",
    };
    const d = await run(o.binary, ["doctor", "--json", "--offline"], docEnv);
    const checks = JSON.parse(d.stdout || '{"checks":[]}').checks as Array<
      { name: string; ok: boolean; detail: string }
    >;
    for (const c of checks) log(`   doctor ${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}`);
    check(d.code === 0, `doctor --json --offline exited ${d.code}: ${d.stderr}`);
    const engine = checks.find((c) => c.name === "onnxruntime");
    const slash = (p: string) => p.replaceAll("\\", "/");
    check(
      Boolean(engine?.ok) && slash(engine!.detail).includes(slash(`${tmp}/cache/plumise/native/`)),
      "the engine did not load from the cache",
    );
    log("ok doctor --offline: every check passes");

    const hidden = ck.config.hidden_size as number;
    const x = fakeHidden(1, 4, hidden, 7);
    const seq = toSeq(x.data, 1, 4, hidden);
    await Deno.writeTextFile(`${tmp}/in.json`, JSON.stringify({ hidden: seq }));
    const b = await run(o.binary, [
      "blocks",
      "run",
      "--model",
      ck.dir,
      "--blocks",
      "0:2",
      "--weights",
      "fp32",
      "--input",
      `${tmp}/in.json`,
      "--output",
      `${tmp}/out.json`,
    ], env);
    check(b.code === 0, `blocks run exited ${b.code}: ${b.stderr}`);
    const out = JSON.parse(await Deno.readTextFile(`${tmp}/out.json`)).outputs[0] as number[][][];
    const diff = maxAbsDiff(out.flat(2), referenceSpan(ck, 0, 2, seq).flat(2));
    check(diff <= 1e-4, `blocks run differs from the reference by ${diff}`);
    log(`ok blocks run: 2 blocks within ${diff.toExponential(1)} of the reference`);

    if (o.plan) {
      const plan = JSON.parse(await Deno.readTextFile(o.plan)).targets.find((t: { target: string }) =>
        t.target === o.target
      );
      check(plan?.totalBytes > 0, `${o.plan} has no plan for ${o.target}`);
      await Deno.writeTextFile(`${tmp}/empty.ts`, "console.log(1);\n");
      const base = `${tmp}/empty${target!.os === "windows" ? ".exe" : ""}`;
      const c = await run(Deno.execPath(), [
        "compile",
        "--no-config",
        "--target",
        target!.triple,
        "--output",
        base,
        `${tmp}/empty.ts`,
      ], { ...env, PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? tmp });
      check(c.code === 0, `compiling an empty program failed: ${c.stderr}`);
      const embedded = (await Deno.stat(o.binary)).size - (await Deno.stat(base)).size;
      const upper = plan.totalBytes + 3 * plan.moduleBytes + 2 ** 20;
      check(
        embedded >= plan.totalBytes && embedded <= upper,
        `the binary carries ${embedded} bytes beyond the runtime; the plan says ${plan.totalBytes}–${upper}`,
      );
      log(`ok size: ${embedded} bytes embedded (planned ${plan.totalBytes} + transpiled modules)`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { binary: { type: "string" }, target: { type: "string" }, plan: { type: "string" } },
  });
  if (!values.binary || !values.target) {
    console.error("usage: release_smoke.ts --binary PATH --target NAME [--plan embed-plan.json]");
    Deno.exit(2);
  }
  try {
    await releaseSmoke({ binary: values.binary, target: values.target, plan: values.plan });
    console.log(`smoke test of ${values.binary} passed`);
  } catch (err) {
    console.error(
      `smoke test of ${values.binary} FAILED: ${err instanceof Error ? err.message : String(err)}`,
    );
    Deno.exit(1);
  }
}
