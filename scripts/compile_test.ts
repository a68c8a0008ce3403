/**
 * The compile task's dry run: per target, the files the binary embeds (only that target's
 * onnxruntime library, nothing test-only), checked against what `deno compile` itself embeds.
 */
import assert from "node:assert/strict";
import { BINARY_PERMISSIONS } from "../lib/cli/permissions.ts";
import { ORT_FILES } from "../lib/runtime/native/ort_files.ts";
import { findTarget, TARGETS } from "./compile_targets.ts";
import { compileArgs, sha256Sums } from "./compile.ts";
import { repoRoot } from "./embed_plan.ts";

interface DryTarget {
  target: string;
  asset: string;
  refused?: string;
  totalBytes: number;
  moduleBytes: number;
  npmBytes: number;
  nativeLibrary: { path: string; bytes: number };
  addon: boolean;
  args: string[];
  files: Array<{ path: string; bytes: number }>;
}

const ROOT = repoRoot();

async function dryRun(...extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}/scripts/compile.ts`, "--dry-run", ...extra],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

const plans = (async () => {
  const r = await dryRun("--json");
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).targets as DryTarget[];
})();

const TEST_ONLY = [
  /(^|\/)@foundry-rs\+anvil/,
  /(^|\/)solc@/,
  /^node_modules\/solc$/,
  /(^|\/)yaml@/,
  /^tests\//,
  /_test\.ts$/,
  /^contracts\/test\//,
  /^(?!node_modules\/).*fixture/,
  /^scripts\//,
];

Deno.test("compile --dry-run --json: five targets, macOS x64 refused with the reason", async () => {
  const targets = await plans;
  assert.deepEqual(targets.map((t) => t.asset), [
    "plumise-linux-x64",
    "plumise-linux-arm64",
    "plumise-macos-x64",
    "plumise-macos-arm64",
    "plumise-windows-x64.exe",
  ]);
  const mac = targets.find((t) => t.target === "macos-x64")!;
  assert.match(mac.refused!, /no macOS x64 \(Intel\) library/);
  assert.equal(mac.files, undefined);
  const explicit = await dryRun("--target", "macos-x64");
  assert.equal(explicit.code, 2);
  assert.match(explicit.stderr, /macos-x64 is refused: onnxruntime-node .* no macOS x64/);
  const unknown = await dryRun("--target", "linux-riscv");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown target linux-riscv; choose from linux-x64/);
});

Deno.test("compile --dry-run: each target embeds only its own onnxruntime library and nothing test-only", async () => {
  for (const t of (await plans).filter((p) => !p.refused)) {
    const ort = ORT_FILES.find((f) => f.platform === t.target)!;
    const bin = t.files.filter((f) => f.path.includes("/onnxruntime-node/bin/"));
    const expected = [`bin/napi-v6/${ort.packageDir}/${ort.file}`];
    if (t.addon) expected.push(`bin/napi-v6/${ort.packageDir}/onnxruntime_binding.node`);
    assert.deepEqual(
      bin.map((f) => f.path.replace(/^.*\/onnxruntime-node\//, "")).sort(),
      expected.sort(),
      t.target,
    );
    assert.equal(t.nativeLibrary.bytes, ort.bytes);
    assert.ok(!t.files.some((f) => /\.dll$/.test(f.path) && !f.path.endsWith(`/${ort.file}`)), "no DirectML");
    for (const re of TEST_ONLY) {
      const hit = t.files.find((f) => re.test(f.path));
      assert.equal(hit, undefined, `${t.target} embeds ${hit?.path}`);
    }
    assert.equal(t.totalBytes, t.files.reduce((a, f) => a + f.bytes, 0));
    assert.equal(t.totalBytes, t.moduleBytes + t.npmBytes);
    // the code that runs: the entry point, the CLI and the runtime Worker
    for (
      const p of [
        "main.ts",
        "lib/cli/cli.ts",
        "lib/runtime/ort_worker.ts",
        "lib/runtime/native/ort_library.ts",
      ]
    ) {
      assert.ok(t.files.some((f) => f.path === p), `${t.target} lacks ${p}`);
    }
    // what the code imports from npm is there (resolved through the real .deno folders)
    assert.ok(
      t.files.some((f) =>
        /^node_modules\/\.deno\/ethers@[^/]+\/node_modules\/ethers\/package\.json$/.test(f.path)
      ),
    );
    // lean: the library plus well under 64 MiB of everything else
    assert.ok(
      t.totalBytes - ort.bytes < 64 * 2 ** 20,
      `${t.target}: ${t.totalBytes - ort.bytes} bytes besides the library`,
    );
    // the arguments: permissions, the Worker and the library included, exact excludes
    for (const p of BINARY_PERMISSIONS) assert.ok(t.args.includes(p));
    assert.ok(!t.args.includes("-A") && !t.args.includes("--allow-all"));
    const includes = t.args.filter((_, i) => t.args[i - 1] === "--include").map((p) =>
      p.replaceAll("\\", "/")
    );
    assert.ok(includes.includes("lib/runtime/ort_worker.ts"));
    assert.ok(includes.some((p) => p.endsWith(`/bin/napi-v6/${ort.packageDir}/${ort.file}`)));
    const excludes = t.args.filter((_, i) => t.args[i - 1] === "--exclude").map((p) =>
      p.replaceAll("\\", "/")
    );
    assert.ok(excludes.some((p) => /^node_modules\/\.deno\/solc@/.test(p)));
    assert.ok(excludes.every((p) => p.startsWith("node_modules/")), "excludes are repository-relative");
  }
});

Deno.test("compile: deno compile embeds what the dry run lists (a stand-in base runtime, linux-x64)", async () => {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return; // the stand-in is this host's /bin/true
  const t = (await plans).find((p) => p.target === "linux-x64")!;
  const tmp = await Deno.makeTempDir();
  try {
    const base = `${tmp}/denort`;
    await Deno.copyFile("/bin/true", base);
    const args = compileArgs(findTarget("linux-x64")!, {
      includes: t.args.filter((_, i) => t.args[i - 1] === "--include"),
      excludes: t.args.filter((_, i) => t.args[i - 1] === "--exclude"),
    }, tmp);
    const out = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENORT_BIN: base },
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    const embedded = (await Deno.stat(`${tmp}/plumise-linux-x64`)).size - (await Deno.stat(base)).size;
    // deno adds the transpiled JS and source maps of the TypeScript modules and its metadata
    assert.ok(embedded >= t.totalBytes, `${embedded} < ${t.totalBytes}`);
    assert.ok(embedded <= t.totalBytes + 3 * t.moduleBytes + 2 ** 20, `${embedded} ≫ ${t.totalBytes}`);
    // deno's own listing names no excluded package and no other platform
    assert.doesNotMatch(text, /solc@|anvil|── (win32|darwin|arm64)\b|DirectML/);
    // the library alone (the FFI engine imports no onnxruntime-node module, so no .node addon)
    assert.match(text, /bin\/napi-v6\/linux\/x64\/libonnxruntime\.so\.1 \(4\d\.\d+MB\)/);
    assert.doesNotMatch(text, /onnxruntime_binding\.node/);
    // deno.json's unstable features travel in the binary's metadata (request.signal aborts only
    // when the client goes away, which the HTTP API relies on)
    const bin = new TextDecoder("latin1").decode(await Deno.readFile(`${tmp}/plumise-linux-x64`));
    assert.match(bin, /"unstable_config":\{[^}]*"features":\["no-legacy-abort"\]/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("compile: SHA256SUMS has the sha256sum format the install script reads", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/plumise-linux-x64`, "abc");
    await Deno.writeTextFile(`${dir}/plumise-macos-arm64`, "");
    assert.equal(
      await sha256Sums([`${dir}/plumise-macos-arm64`, `${dir}/plumise-linux-x64`]),
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  plumise-linux-x64\n" +
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855  plumise-macos-arm64\n",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compile targets: asset names and triples", () => {
  assert.deepEqual(TARGETS.map((t) => [t.name, t.triple, t.asset]), [
    ["linux-x64", "x86_64-unknown-linux-gnu", "plumise-linux-x64"],
    ["linux-arm64", "aarch64-unknown-linux-gnu", "plumise-linux-arm64"],
    ["macos-x64", "x86_64-apple-darwin", "plumise-macos-x64"],
    ["macos-arm64", "aarch64-apple-darwin", "plumise-macos-arm64"],
    ["windows-x64", "x86_64-pc-windows-msvc", "plumise-windows-x64.exe"],
  ]);
  assert.equal(findTarget("x86_64-unknown-linux-gnu")?.name, "linux-x64");
});
