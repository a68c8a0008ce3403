/**
 * install.sh under dash against a local HTTP server with fake release assets: install, upgrade
 * in place, checksum mismatch, failed download and unsupported machines (a `uname` stand-in).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { REPO_ROOT } from "./helpers/cli.ts";

const SCRIPT = `${REPO_ROOT}install.sh`;

/** A stand-in release asset: a script that answers `version` like the binary. */
const fakeBinary = (version: string) => `#!/bin/sh\necho "plumise ${version} (fake)"\n`;
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

interface Release {
  files: Map<string, string>;
  url: string;
  requests: string[];
}

async function withRelease(fn: (r: Release) => Promise<void>): Promise<void> {
  const files = new Map<string, string>();
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    const name = new URL(req.url).pathname.replace(/^\/releases\/v1\//, "");
    requests.push(name);
    const body = files.get(name);
    return body === undefined ? new Response("Not Found", { status: 404 }) : new Response(body);
  });
  try {
    await fn({ files, url: `http://127.0.0.1:${server.addr.port}/releases/v1`, requests });
  } finally {
    await server.shutdown();
  }
}

function publish(r: Release, asset: string, body: string, sums?: string): void {
  r.files.set(asset, body);
  r.files.set("SHA256SUMS", sums ?? `${sha("other")}  plumise-windows-x64.exe\n${sha(body)}  ${asset}\n`);
}

async function runInstall(
  env: Record<string, string>,
  uname?: { s: string; m: string },
): Promise<{ code: number; out: string }> {
  let path = Deno.env.get("PATH") ?? "/usr/bin:/bin";
  let shim: string | undefined;
  if (uname) {
    shim = await Deno.makeTempDir();
    await Deno.writeTextFile(
      `${shim}/uname`,
      `#!/bin/sh\ncase "$1" in -s) echo ${uname.s} ;; -m) echo ${uname.m} ;; *) echo ${uname.s} ;; esac\n`,
      { mode: 0o755 },
    );
    path = `${shim}:${path}`;
  }
  const out = await new Deno.Command("dash", {
    args: [SCRIPT],
    env: { PATH: path, HOME: env.HOME ?? "/nonexistent", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (shim) await Deno.remove(shim, { recursive: true });
  const dec = new TextDecoder();
  return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

const host = Deno.build.arch === "aarch64" ? { s: "Linux", m: "aarch64" } : { s: "Linux", m: "x86_64" };
const hostAsset = host.m === "aarch64" ? "plumise-linux-arm64" : "plumise-linux-x64";

Deno.test("install.sh: installs, upgrades in place, and prints the next two commands", async () => {
  if (Deno.build.os === "windows") return;
  await withRelease(async (r) => {
    const dir = await Deno.makeTempDir();
    try {
      publish(r, hostAsset, fakeBinary("1.0.0"));
      const first = await runInstall({ PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: dir }, host);
      assert.equal(first.code, 0, first.out);
      assert.deepEqual(r.requests, ["SHA256SUMS", hostAsset]);
      assert.match(first.out, new RegExp(`installed ${dir}/plumise \\(plumise 1\\.0\\.0 \\(fake\\)\\)`));
      assert.match(first.out, /plumise wallet new --keystore \/etc\/plumise\/keystore\.json/);
      assert.match(
        first.out,
        /plumise service install --tier lite --keystore \/etc\/plumise\/keystore\.json/,
      );
      assert.match(first.out, new RegExp(`${dir} is not on your PATH`));
      const st = await Deno.stat(`${dir}/plumise`);
      assert.equal(st.mode! & 0o777, 0o755);
      assert.deepEqual(await listDir(dir), ["plumise"]);

      publish(r, hostAsset, fakeBinary("1.1.0"));
      const again = await runInstall({ PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: dir }, host);
      assert.equal(again.code, 0, again.out);
      assert.match(again.out, /upgraded .*plumise 1\.0\.0 \(fake\) -> plumise 1\.1\.0 \(fake\)/);
      assert.equal(await Deno.readTextFile(`${dir}/plumise`), fakeBinary("1.1.0"));
      assert.deepEqual(await listDir(dir), ["plumise"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("install.sh: a checksum mismatch or a failed download leaves the installed binary untouched", async () => {
  if (Deno.build.os === "windows") return;
  await withRelease(async (r) => {
    const dir = await Deno.makeTempDir();
    try {
      publish(r, hostAsset, fakeBinary("1.0.0"));
      assert.equal(
        (await runInstall({ PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: dir }, host)).code,
        0,
      );

      // altered in transit: the sums are for another file
      publish(r, hostAsset, fakeBinary("6.6.6"), `${sha(fakeBinary("2.0.0"))}  ${hostAsset}\n`);
      const bad = await runInstall({ PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: dir }, host);
      assert.notEqual(bad.code, 0);
      assert.match(
        bad.out,
        new RegExp(`checksum mismatch for ${hostAsset}: got ${sha(fakeBinary("6.6.6"))}`),
      );
      assert.match(bad.out, /nothing was installed/);
      assert.equal(await Deno.readTextFile(`${dir}/plumise`), fakeBinary("1.0.0"));
      assert.deepEqual(await listDir(dir), ["plumise"]);

      // no line for the asset
      publish(r, hostAsset, fakeBinary("2.0.0"), `${sha("x")}  plumise-macos-arm64\n`);
      const noLine = await runInstall({ PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: dir }, host);
      assert.notEqual(noLine.code, 0);
      assert.match(noLine.out, new RegExp(`SHA256SUMS has no line for ${hostAsset}`));

      // the asset is missing from the release
      r.files.delete(hostAsset);
      const missing = await runInstall({ PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: dir }, host);
      assert.notEqual(missing.code, 0);
      assert.match(missing.out, new RegExp(`download of ${r.url}/${hostAsset} failed`));
      assert.equal(await Deno.readTextFile(`${dir}/plumise`), fakeBinary("1.0.0"));
      assert.deepEqual(await listDir(dir), ["plumise"]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});

Deno.test("install.sh: unknown architectures, macOS x64 and unknown systems are refused before any download", async () => {
  if (Deno.build.os === "windows") return;
  await withRelease(async (r) => {
    const dir = await Deno.makeTempDir();
    try {
      publish(r, hostAsset, fakeBinary("1.0.0"));
      const env = { PLUMISE_RELEASE_URL: r.url, PLUMISE_INSTALL_DIR: `${dir}/bin` };
      const riscv = await runInstall(env, { s: "Linux", m: "riscv64" });
      assert.notEqual(riscv.code, 0);
      assert.match(riscv.out, /unsupported architecture: riscv64/);
      const intelMac = await runInstall(env, { s: "Darwin", m: "x86_64" });
      assert.notEqual(intelMac.code, 0);
      assert.match(
        intelMac.out,
        /no binary for macOS x64 \(Intel\): onnxruntime's package has no library for it/,
      );
      const bsd = await runInstall(env, { s: "FreeBSD", m: "amd64" });
      assert.notEqual(bsd.code, 0);
      assert.match(bsd.out, /unsupported operating system: FreeBSD/);
      assert.deepEqual(r.requests, []);
      assert.deepEqual(await listDir(dir), []);
      // Apple silicon gets its asset and the non-service next steps
      publish(r, "plumise-macos-arm64", fakeBinary("1.0.0"));
      const mac = await runInstall(env, { s: "Darwin", m: "arm64" });
      assert.equal(mac.code, 0, mac.out);
      assert.deepEqual(r.requests, ["SHA256SUMS", "plumise-macos-arm64"]);
      assert.match(mac.out, /plumise serve --tier lite/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
