import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { RuntimeError } from "../../errors.ts";
import { ORT_FILES, ORT_PACKAGE_BIN, ORT_VERSION, ortFileFor } from "./ort_files.ts";
import {
  defaultCacheHome,
  ensureOrtLibrary,
  NATIVE_ERROR_CODES,
  ortLibraryDir,
  packageFileUrl,
} from "./ort_library.ts";
import { OrtApi } from "./ort_api.ts";

const here = ortFileFor(Deno.build.os, Deno.build.arch);
const REPO = new URL("../../../", import.meta.url);
const MODULE = new URL("./ort_library.ts", import.meta.url).href;

async function sha256(path: string | URL): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

async function listDir(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("ort files: the pinned table is the package's files, one library per platform", async () => {
  const pkg = JSON.parse(
    await Deno.readTextFile(new URL(`node_modules/onnxruntime-node/package.json`, REPO)),
  );
  assert.equal(pkg.version, ORT_VERSION);
  for (const f of ORT_FILES) {
    const url = new URL(`${ORT_PACKAGE_BIN}/${f.packageDir}/${f.file}`, REPO);
    assert.equal(packageFileUrl(f).href, url.href);
    assert.equal((await Deno.stat(url)).size, f.bytes, f.platform);
    assert.equal(await sha256(url), f.sha256, f.platform);
  }
  assert.equal(ortFileFor("darwin", "x86_64"), undefined);
});

Deno.test("ort library: first start extracts, the second reuses the verified copy", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const first = await ensureOrtLibrary({ cacheDir: cache });
    assert.equal(first.extracted, true);
    assert.equal(first.version, ORT_VERSION);
    assert.equal(first.path, `${ortLibraryDir(cache, here!)}/${here!.file}`);
    assert.match(first.path, new RegExp(`/plumise/native/onnxruntime-${ORT_VERSION}-${here!.platform}/`));
    assert.equal(await sha256(first.path), here!.sha256);
    assert.equal(first.source, decodeURIComponent(packageFileUrl(here!).pathname));
    const st1 = await Deno.stat(first.path);
    const second = await ensureOrtLibrary({ cacheDir: cache });
    assert.equal(second.extracted, false);
    assert.equal(second.path, first.path);
    const st2 = await Deno.stat(second.path);
    assert.equal(st2.ino, st1.ino);
    assert.equal(st2.mtime?.getTime(), st1.mtime?.getTime());
    assert.deepEqual(await listDir(ortLibraryDir(cache, here!)), [".lock", here!.file]);
    // and it is a library that loads
    assert.equal(OrtApi.load(second.path).version, ORT_VERSION);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("ort library: a corrupted copy, a partial copy and a killed writer's leftovers are replaced", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const { path } = await ensureOrtLibrary({ cacheDir: cache });
    const dir = ortLibraryDir(cache, here!);
    // same size, one byte changed
    const bytes = await Deno.readFile(path);
    bytes[bytes.length >> 1] ^= 0xff;
    await Deno.writeFile(path, bytes);
    const repaired = await ensureOrtLibrary({ cacheDir: cache });
    assert.equal(repaired.extracted, true);
    assert.equal(await sha256(path), here!.sha256);
    // cut short, with a half-written temporary file of a writer that died
    await Deno.truncate(path, 1000);
    await Deno.writeFile(`${dir}/${here!.file}.tmp-999999-deadbeef`, new Uint8Array(4096));
    const again = await ensureOrtLibrary({ cacheDir: cache });
    assert.equal(again.extracted, true);
    assert.equal(await sha256(path), here!.sha256);
    assert.deepEqual(await listDir(dir), [".lock", here!.file]);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("ort library: concurrent starts in one process and in two processes do not trip over each other", async () => {
  const cache = await Deno.makeTempDir();
  try {
    const results = await Promise.all([1, 2, 3].map(() => ensureOrtLibrary({ cacheDir: cache })));
    assert.equal(results.filter((r) => r.extracted).length, 1);
    await Deno.remove(`${cache}/plumise`, { recursive: true });

    const script = `${cache}/start.ts`;
    await Deno.writeTextFile(
      script,
      `import { ensureOrtLibrary } from ${JSON.stringify(MODULE)};\n` +
        `const r = await ensureOrtLibrary({ cacheDir: Deno.args[0] });\n` +
        `console.log(JSON.stringify({ extracted: r.extracted, path: r.path }));\n`,
    );
    const spawn = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--quiet", "--allow-read", "--allow-write", "--allow-env", script, cache],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const outs = await Promise.all([spawn(), spawn()]);
    const parsed = outs.map((o) => {
      assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
      return JSON.parse(new TextDecoder().decode(o.stdout)) as { extracted: boolean; path: string };
    });
    assert.equal(parsed.filter((p) => p.extracted).length, 1, JSON.stringify(parsed));
    assert.equal(parsed[0].path, parsed[1].path);
    assert.equal(await sha256(parsed[0].path), here!.sha256);
    assert.deepEqual(await listDir(ortLibraryDir(cache, here!)), [".lock", here!.file]);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("ort library: an unwritable cache is a clear error with a hint", async () => {
  const base = await Deno.makeTempDir();
  try {
    // the cache path runs through a regular file
    await Deno.writeTextFile(`${base}/file`, "x");
    await assert.rejects(ensureOrtLibrary({ cacheDir: `${base}/file/cache` }), (err) => {
      assert.ok(err instanceof RuntimeError);
      assert.equal(err.code, NATIVE_ERROR_CODES.CACHE_UNWRITABLE);
      assert.match(
        err.message,
        /cannot write the onnxruntime library into .*\/file\/cache\/plumise\/native\//,
      );
      assert.match(err.hint, /XDG_CACHE_HOME/);
      return true;
    });
    // a process not allowed to write there (Deno's permissions; the same error for EACCES)
    const script = `${base}/start.ts`;
    await Deno.writeTextFile(
      script,
      `import { ensureOrtLibrary } from ${JSON.stringify(MODULE)};\n` +
        `try { await ensureOrtLibrary({ cacheDir: Deno.args[0] }); console.log("ok"); }\n` +
        `catch (e) { console.log(JSON.stringify({ code: e.code, hint: e.hint })); }\n`,
    );
    await Deno.mkdir(`${base}/ro`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-read",
        `--allow-write=${base}/elsewhere`,
        "--allow-env",
        script,
        `${base}/ro`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.equal(r.code, NATIVE_ERROR_CODES.CACHE_UNWRITABLE);
    if (Deno.uid() !== 0 && Deno.build.os !== "windows") {
      await Deno.chmod(`${base}/ro`, 0o500);
      await assert.rejects(
        ensureOrtLibrary({ cacheDir: `${base}/ro` }),
        (err) => err instanceof RuntimeError && err.code === NATIVE_ERROR_CODES.CACHE_UNWRITABLE,
      );
    }
  } finally {
    await Deno.chmod(`${base}/ro`, 0o700).catch(() => {});
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("ort library: no library for the platform, a missing or wrong source file", async () => {
  const cache = await Deno.makeTempDir();
  try {
    await assert.rejects(ensureOrtLibrary({ cacheDir: cache, os: "darwin", arch: "x86_64" }), (err) => {
      assert.ok(err instanceof RuntimeError);
      assert.equal(err.code, NATIVE_ERROR_CODES.UNSUPPORTED_PLATFORM);
      assert.match(err.message, /no macOS x64 \(Intel\) library/);
      return true;
    });
    const fake = { ...here!, platform: "test-fake", file: "libfake.so" };
    const missing = new URL(`file://${cache}/nowhere/libfake.so`);
    await assert.rejects(
      ensureOrtLibrary({ cacheDir: cache, sourceOverride: { url: missing, file: fake } }),
      (err) => err instanceof RuntimeError && err.code === NATIVE_ERROR_CODES.SOURCE_MISSING,
    );
    await Deno.writeFile(`${cache}/libfake.so`, new Uint8Array(1234));
    await assert.rejects(
      ensureOrtLibrary({
        cacheDir: cache,
        sourceOverride: { url: new URL(`file://${cache}/libfake.so`), file: fake },
      }),
      (err) => {
        assert.ok(err instanceof RuntimeError);
        assert.equal(err.code, NATIVE_ERROR_CODES.SOURCE_CORRUPT);
        assert.match(err.message, /1234 bytes, sha256 [0-9a-f]{64}/);
        return true;
      },
    );
    // nothing half-written stays behind
    assert.deepEqual(await listDir(ortLibraryDir(cache, fake)), [".lock"]);
    // an aborted start leaves nothing either
    const ctl = new AbortController();
    ctl.abort(new Error("stop"));
    await assert.rejects(ensureOrtLibrary({ cacheDir: `${cache}/b`, signal: ctl.signal }), /stop/);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("ort library: the default cache home follows XDG, macOS and Windows conventions", () => {
  const env = (m: Record<string, string>) => (n: string) => m[n];
  assert.equal(defaultCacheHome(env({ XDG_CACHE_HOME: "/x", HOME: "/h" }), "linux"), "/x");
  assert.equal(defaultCacheHome(env({ HOME: "/h" }), "linux"), "/h/.cache");
  assert.equal(defaultCacheHome(env({ HOME: "/Users/a" }), "darwin"), "/Users/a/Library/Caches");
  assert.equal(defaultCacheHome(env({ LOCALAPPDATA: "C:\\L" }), "windows"), "C:\\L");
});
