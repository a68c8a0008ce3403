/**
 * Builds the single plumise binary for every supported target with `deno compile`,
 * embedding the binary's permission set (lib/cli/permissions.ts) and the onnxruntime
 * native files of that target.
 *
 *   deno task compile                      # all five targets into dist/
 *   deno task compile --target x86_64-unknown-linux-gnu
 *
 * `deno compile` downloads a base runtime ("denort") per target. Where that is impossible
 * (no network), point DENORT_BIN at a denort binary of the target you build.
 * @module
 */
import { parseArgs } from "node:util";
import { BINARY_PERMISSIONS } from "../lib/cli/permissions.ts";
import { VERSION } from "../lib/util/version.ts";

export interface Target {
  /** Rust-style triple that `deno compile --target` takes. */
  triple: string;
  /** onnxruntime-node's folder for this platform, if it ships one. */
  ortDir?: string;
  exe: string;
}

export const TARGETS: readonly Target[] = [
  { triple: "x86_64-unknown-linux-gnu", ortDir: "linux/x64", exe: "plumise-linux-x64" },
  { triple: "aarch64-unknown-linux-gnu", ortDir: "linux/arm64", exe: "plumise-linux-arm64" },
  // onnxruntime-node 1.30.0 ships no darwin/x64 binaries: that build runs everything but block serving.
  { triple: "x86_64-apple-darwin", exe: "plumise-macos-x64" },
  { triple: "aarch64-apple-darwin", ortDir: "darwin/arm64", exe: "plumise-macos-arm64" },
  { triple: "x86_64-pc-windows-msvc", ortDir: "win32/x64", exe: "plumise-windows-x64.exe" },
];

const ORT_BIN = "node_modules/onnxruntime-node/bin/napi-v6";

/** The exact `deno compile` arguments for one target. */
export function compileArgs(target: Target, outDir = "dist"): string[] {
  const args = ["compile", "--no-check", "--target", target.triple, "--output", `${outDir}/${target.exe}`];
  args.push(...BINARY_PERMISSIONS);
  if (target.ortDir) args.push("--include", `${ORT_BIN}/${target.ortDir}`);
  // Workers are not bundled by `deno compile`: the onnxruntime Worker module must be included.
  args.push("--include", "lib/runtime/ort_worker.ts");
  args.push("--include", "contracts");
  args.push("main.ts");
  return args;
}

export class CompileError extends Error {
  constructor(readonly target: string, message: string) {
    super(message);
    this.name = "CompileError";
  }
}

function firstError(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /error/i.test(l)) ?? lines[0] ?? "(nothing)";
}

async function compileOne(target: Target, outDir: string): Promise<void> {
  const args = compileArgs(target, outDir);
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (out.success) return;
  const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
  if (/download|denort|fetch|dns|connect|network|tcp/i.test(text) && !Deno.env.get("DENORT_BIN")) {
    throw new CompileError(
      target.triple,
      `deno compile for ${target.triple} could not download its base runtime (denort).\n` +
        `  Set DENORT_BIN to a local denort binary for ${target.triple} (from the Deno ${Deno.version.deno} release ` +
        `archive denort-${target.triple}.zip) and run again with --target ${target.triple}.\n` +
        `  deno said: ${firstError(text)}`,
    );
  }
  throw new CompileError(target.triple, `deno compile for ${target.triple} failed:\n${text.trim()}`);
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      target: { type: "string", multiple: true },
      out: { type: "string", default: "dist" },
      "dry-run": { type: "boolean" },
    },
  });
  const wanted = values.target?.length ? values.target : TARGETS.map((t) => t.triple);
  const unknown = wanted.filter((w) => !TARGETS.some((t) => t.triple === w));
  if (unknown.length) {
    console.error(
      `unknown target ${unknown.join(", ")}; choose from ${TARGETS.map((t) => t.triple).join(", ")}`,
    );
    Deno.exit(2);
  }
  let failed = 0;
  for (const target of TARGETS.filter((t) => wanted.includes(t.triple))) {
    if (values["dry-run"]) {
      console.log(`deno ${compileArgs(target, values.out).join(" ")}`);
      continue;
    }
    if (!target.ortDir) {
      console.error(
        `warning: ${target.triple}: onnxruntime-node ships no native files; blocks cannot be served there`,
      );
    }
    try {
      await compileOne(target, values.out!);
      console.log(`built ${values.out}/${target.exe} (plumise ${VERSION})`);
    } catch (err) {
      failed++;
      console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  Deno.exit(failed ? 1 : 0);
}
