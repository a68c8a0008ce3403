/**
 * Builds the plumise binary per target with `deno compile`, embedding the binary's permission set
 * (lib/cli/permissions.ts), its Worker modules, the target's onnxruntime library and the npm
 * packages the code reaches, and nothing else (no other platform's engine files, no test-only
 * package such as @foundry-rs/anvil or solc, no tests or fixtures): see scripts/embed_plan.ts.
 *
 *   deno task compile                          # every target into dist/, then dist/SHA256SUMS
 *   deno task compile --target linux-x64       # one (or a triple: x86_64-unknown-linux-gnu)
 *   deno task compile --dry-run [--json]       # what each binary would embed, without compiling
 *
 * Assets: plumise-linux-x64, plumise-linux-arm64, plumise-macos-arm64, plumise-windows-x64.exe
 * (macos-x64 is refused: the onnxruntime package has no library for it). `deno compile`
 * downloads a base runtime (denort) per target; where that is impossible, set DENORT_BIN.
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BINARY_PERMISSIONS } from "../lib/cli/permissions.ts";
import { BINARY_V8_FLAGS } from "../lib/cli/v8_flags.ts";
import { VERSION } from "../lib/util/version.ts";
import { type CompileTarget, findTarget, TARGETS } from "./compile_targets.ts";
import { type EmbedPlan, embedPlan, repoRoot } from "./embed_plan.ts";
import { moduleGraph } from "./module_graph.ts";

export { type CompileTarget, TARGETS };

/** The exact `deno compile` arguments for one target and its plan (run in the repository root). */
export function compileArgs(
  target: CompileTarget,
  plan: Pick<EmbedPlan, "includes" | "excludes">,
  outDir = "dist",
): string[] {
  const args = ["compile", "--no-check", "--frozen", "--target", target.triple];
  args.push("--output", join(outDir, target.asset));
  args.push(...BINARY_V8_FLAGS, ...BINARY_PERMISSIONS);
  for (const inc of plan.includes) args.push("--include", inc);
  for (const exc of plan.excludes) args.push("--exclude", exc);
  args.push("main.ts");
  return args;
}

/** `SHA256SUMS` text (the format of `sha256sum`) for the given files. */
export async function sha256Sums(paths: readonly string[]): Promise<string> {
  const lines: string[] = [];
  for (const p of [...paths].sort()) {
    const h = createHash("sha256");
    using f = await Deno.open(p);
    const buf = new Uint8Array(1 << 20);
    for (let n = await f.read(buf); n !== null; n = await f.read(buf)) h.update(buf.subarray(0, n));
    lines.push(`${h.digest("hex")}  ${p.split(/[\\/]/).pop()}`);
  }
  return lines.map((l) => l + "\n").join("");
}

function firstError(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /error/i.test(l)) ?? lines[0] ?? "(nothing)";
}

async function compileOne(
  root: string,
  target: CompileTarget,
  plan: EmbedPlan,
  outDir: string,
): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: compileArgs(target, plan, outDir),
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (out.success) return;
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  if (/download|denort|fetch|dns|connect|network|tcp/i.test(text) && !Deno.env.get("DENORT_BIN")) {
    throw new Error(
      `deno compile for ${target.name} could not download its base runtime (denort).\n` +
        `  Set DENORT_BIN to a local denort binary for ${target.triple} (from the Deno ${Deno.version.deno} ` +
        `release archive denort-${target.triple}.zip) and run again with --target ${target.name}.\n` +
        `  deno said: ${firstError(text)}`,
    );
  }
  throw new Error(`deno compile for ${target.name} failed:\n${text.trim()}`);
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string", multiple: true },
      out: { type: "string", default: "dist" },
      "dry-run": { type: "boolean" },
      json: { type: "boolean" },
    },
  });
  const wanted = values.target?.length ? values.target : TARGETS.map((t) => t.name);
  const unknown = wanted.filter((w) => !findTarget(w));
  if (unknown.length) {
    console.error(
      `unknown target ${unknown.join(", ")}; choose from ${TARGETS.map((t) => t.name).join(", ")}`,
    );
    Deno.exit(2);
  }
  const targets = wanted.map((w) => findTarget(w)!);
  const explicitRefused = values.target?.length ? targets.filter((t) => t.refused) : [];
  if (explicitRefused.length) {
    for (const t of explicitRefused) console.error(`error: ${t.name} is refused: ${t.refused}`);
    Deno.exit(2);
  }
  const root = await Deno.realPath(repoRoot());
  const graph = await moduleGraph(root);
  const plans: Array<{ target: CompileTarget; plan?: EmbedPlan }> = [];
  for (const t of targets) {
    plans.push({ target: t, plan: t.refused ? undefined : await embedPlan(t, root, graph) });
  }

  if (values["dry-run"]) {
    if (values.json) {
      console.log(JSON.stringify({
        plumise: VERSION,
        deno: Deno.version.deno,
        targets: plans.map(({ target, plan }) => ({
          target: target.name,
          triple: target.triple,
          asset: target.asset,
          ...(target.refused ? { refused: target.refused } : {
            totalBytes: plan!.totalBytes,
            moduleBytes: plan!.moduleBytes,
            npmBytes: plan!.npmBytes,
            nativeLibrary: plan!.nativeLibrary,
            addon: plan!.addon,
            notes: plan!.notes,
            args: compileArgs(target, plan!, values.out),
            files: plan!.files,
          }),
        })),
      }));
    } else {
      for (const { target, plan } of plans) {
        if (!plan) {
          console.log(`${target.asset}: refused — ${target.refused}`);
          continue;
        }
        console.log(
          `${target.asset}: ${plan.files.length} files, ${mib(plan.totalBytes)} embedded ` +
            `(modules ${mib(plan.moduleBytes)}, npm ${
              mib(plan.npmBytes)
            }; engine ${plan.nativeLibrary.path} ` +
            `${mib(plan.nativeLibrary.bytes)}; addon ${plan.addon ? "embedded" : "none"})`,
        );
        console.log(`  deno ${compileArgs(target, plan, values.out).join(" ")}`);
      }
    }
    Deno.exit(0);
  }

  await Deno.mkdir(join(root, values.out!), { recursive: true });
  let failed = 0;
  for (const { target, plan } of plans) {
    if (!plan) {
      console.error(`skipped ${target.asset}: ${target.refused}`);
      continue;
    }
    try {
      await compileOne(root, target, plan, values.out!);
      console.log(
        `built ${values.out}/${target.asset} (plumise ${VERSION}, ${mib(plan.totalBytes)} embedded)`,
      );
    } catch (err) {
      failed++;
      console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const assets: string[] = [];
  for await (const e of Deno.readDir(join(root, values.out!))) {
    if (e.isFile && /^plumise-[a-z]+-[a-z0-9]+(\.exe)?$/.test(e.name)) {
      assets.push(join(root, values.out!, e.name));
    }
  }
  if (assets.length) {
    await Deno.writeTextFile(join(root, values.out!, "SHA256SUMS"), await sha256Sums(assets));
    console.log(`wrote ${values.out}/SHA256SUMS (${assets.length} assets)`);
  }
  Deno.exit(failed ? 1 : 0);
}
