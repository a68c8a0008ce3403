/**
 * Puts this platform's onnxruntime library into a versioned, hash-checked folder of the cache
 * directory and says where it is, for `Deno.dlopen`:
 *
 *   <cache>/plumise/native/onnxruntime-<version>-<platform>/<file>
 *
 * The copy is filled on first use from the package file at the module-relative path
 * `node_modules/onnxruntime-node/bin/napi-v6/<os>/<arch>/<file>`. Under `deno run` that is the
 * file in the checkout's `node_modules`; in a `deno compile` binary the same URL points into the
 * binary's embedded file system (its root stands where the repository root stood, and the
 * compile task embeds exactly this file), so both run this one code path. The embedded file can
 * be read but not loaded as a library, which is why it is copied out.
 *
 * Every start checks the copy's size and sha256 against the pinned values (`ort_files.ts`); a
 * missing, partial or corrupted copy is replaced. Writers hold a lock file in the folder, write
 * to a temporary name, check the hash and rename into place, so processes starting at once never
 * see a half-written library; a leftover temporary file of a killed writer is removed by the next.
 * @module
 */
import type { AbortOptions } from "../../util/abort.ts";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ErrorCode, errorMessage, RuntimeError } from "../../errors.ts";
import {
  missingReason,
  ORT_PACKAGE_BIN,
  ORT_VERSION,
  ortFileFor,
  type OrtPlatformFile,
} from "./ort_files.ts";

/** Error codes of native loading (their meanings: `ERROR_CODES`, lib/error_codes.ts). */
export const NATIVE_ERROR_CODES = {
  UNSUPPORTED_PLATFORM: "NATIVE_UNSUPPORTED_PLATFORM",
  SOURCE_MISSING: "NATIVE_SOURCE_MISSING",
  SOURCE_CORRUPT: "NATIVE_SOURCE_CORRUPT",
  CACHE_UNWRITABLE: "NATIVE_CACHE_UNWRITABLE",
  LOAD_FAILED: "NATIVE_LOAD_FAILED",
} as const satisfies Record<string, ErrorCode>;

/** Where the library is, and what it is. */
export interface OrtLibrary {
  /** Absolute path of the verified copy, for `Deno.dlopen`. */
  path: string;
  /** onnxruntime release, e.g. `1.30.0`. */
  version: string;
  /** `linux-x64`, `macos-arm64`, … */
  platform: string;
  sha256: string;
  bytes: number;
  /** Where the copy was filled from (a package file, or the binary's embedded one). */
  source: string;
  /** True when this call wrote the copy; false when a valid one was already there. */
  extracted: boolean;
}

export interface EnsureOrtLibraryOptions {
  /**
   * The cache home holding `plumise/` (default: `$XDG_CACHE_HOME`, else `~/.cache` on Linux,
   * `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on Windows).
   */
  cacheDir?: string;
  signal?: AbortSignal;
  /** Platform to prepare (default: this process's). Tests only. */
  os?: string;
  arch?: string;
  /** Replaces the package file and its pins. Tests only. */
  sourceOverride?: { url: URL; file: OrtPlatformFile };
}

/** The default cache home (see {@link EnsureOrtLibraryOptions.cacheDir}). */
export function defaultCacheHome(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
  os: string = Deno.build.os,
): string {
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return xdg;
  if (os === "windows") {
    const local = env("LOCALAPPDATA");
    if (local) return local;
    return join(env("USERPROFILE") ?? ".", "AppData", "Local");
  }
  const home = env("HOME") ?? ".";
  return os === "darwin" ? join(home, "Library", "Caches") : join(home, ".cache");
}

/** The folder that holds the copy of `file`. */
export function ortLibraryDir(cacheHome: string, file: Pick<OrtPlatformFile, "platform">): string {
  return join(cacheHome, "plumise", "native", `onnxruntime-${ORT_VERSION}-${file.platform}`);
}

/** The module-relative URL of a platform's package file (also the binary's embedded file). */
export function packageFileUrl(file: Pick<OrtPlatformFile, "packageDir" | "file">): URL {
  return new URL(`../../../${ORT_PACKAGE_BIN}/${file.packageDir}/${file.file}`, import.meta.url);
}

const CHUNK = 1 << 20;

/** sha256 and size of a file. */
async function hashFile(
  path: string | URL,
  { signal }: AbortOptions = {},
): Promise<{ sha256: string; bytes: number }> {
  const h = createHash("sha256");
  using f = await Deno.open(path, { read: true });
  const buf = new Uint8Array(CHUNK);
  let bytes = 0;
  for (;;) {
    signal?.throwIfAborted();
    const n = await f.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    bytes += n;
  }
  return { sha256: h.digest("hex"), bytes };
}

async function validCopy(
  path: string,
  file: OrtPlatformFile,
  { signal }: AbortOptions = {},
): Promise<boolean> {
  try {
    const st = await Deno.stat(path);
    if (!st.isFile || st.size !== file.bytes) return false;
    return (await hashFile(path, { signal })).sha256 === file.sha256;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function isWriteRefusal(err: unknown): boolean {
  if (
    err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable ||
    err instanceof Deno.errors.NotADirectory ||
    err instanceof Deno.errors.AlreadyExists || err instanceof Deno.errors.NotFound
  ) return true;
  const code = (err as { code?: string }).code;
  return code === "ENOSPC" || code === "EROFS" || code === "EACCES" || code === "EPERM" || code === "EDQUOT";
}

function unwritable(dir: string, cacheHome: string, err: unknown): RuntimeError {
  return new RuntimeError(
    NATIVE_ERROR_CODES.CACHE_UNWRITABLE,
    `cannot write the onnxruntime library into ${dir}: ${errorMessage(err)}`,
    {
      hint: `make ${cacheHome} writable by this user, or point XDG_CACHE_HOME at a writable directory ` +
        "(the systemd unit of `plumise service install` uses its CacheDirectory)",
      cause: err,
      details: { dir },
    },
  );
}

/** Copies `from` to `to`, hashing on the way; returns the hash and size of what was written. */
async function copyHashing(
  from: URL,
  to: string,
  { signal }: AbortOptions = {},
): Promise<{ sha256: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  using src = await Deno.open(from, { read: true });
  using dst = await Deno.open(to, { write: true, createNew: true, mode: 0o755 });
  const buf = new Uint8Array(CHUNK);
  for (;;) {
    signal?.throwIfAborted();
    const n = await src.read(buf);
    if (n === null) break;
    const chunk = buf.subarray(0, n);
    h.update(chunk);
    let off = 0;
    while (off < n) off += await dst.write(chunk.subarray(off));
    bytes += n;
  }
  await dst.syncData();
  return { sha256: h.digest("hex"), bytes };
}

async function removeStaleTemps(dir: string, file: string): Promise<void> {
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.startsWith(`${file}.tmp-`)) await Deno.remove(join(dir, e.name)).catch(() => {});
  }
}

/**
 * Makes sure the verified onnxruntime library of this platform is in the cache and returns its
 * path. Throws `RuntimeError` with a code of {@link NATIVE_ERROR_CODES}: no library for this
 * platform, the package (or embedded) file missing or not the pinned one, or the cache not
 * writable.
 */
export async function ensureOrtLibrary(options: EnsureOrtLibraryOptions = {}): Promise<OrtLibrary> {
  const os = options.os ?? Deno.build.os;
  const arch = options.arch ?? Deno.build.arch;
  const file = options.sourceOverride?.file ?? ortFileFor(os, arch);
  if (!file) {
    throw new RuntimeError(NATIVE_ERROR_CODES.UNSUPPORTED_PLATFORM, missingReason(os, arch)!, {
      hint: "run plumise on Linux x64/arm64, macOS arm64 or Windows x64 to serve blocks; " +
        "on this machine the swarm client, status and wallet commands still work",
      details: { os, arch },
    });
  }
  const source = options.sourceOverride?.url ?? packageFileUrl(file);
  const sourcePath = fileURLToPath(source);
  const cacheHome = options.cacheDir ?? defaultCacheHome();
  const dir = ortLibraryDir(cacheHome, file);
  const path = join(dir, file.file);
  const result = (extracted: boolean): OrtLibrary => ({
    path,
    version: ORT_VERSION,
    platform: file.platform,
    sha256: file.sha256,
    bytes: file.bytes,
    source: sourcePath,
    extracted,
  });

  // Fast path: a valid copy needs no lock (it is only ever replaced by an atomic rename).
  if (await validCopy(path, file, { signal: options.signal }).catch(() => false)) return result(false);

  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    if (isWriteRefusal(err)) throw unwritable(dir, cacheHome, err);
    throw err;
  }
  let lock: Deno.FsFile;
  try {
    lock = await Deno.open(join(dir, ".lock"), { create: true, write: true, mode: 0o644 });
  } catch (err) {
    if (isWriteRefusal(err)) throw unwritable(dir, cacheHome, err);
    throw err;
  }
  try {
    await lock.lock(true);
    options.signal?.throwIfAborted();
    // Another process may have filled it while this one waited for the lock.
    if (await validCopy(path, file, { signal: options.signal })) return result(false);
    await removeStaleTemps(dir, file.file);
    const tmp = join(dir, `${file.file}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
    let written: { sha256: string; bytes: number };
    try {
      written = await copyHashing(source, tmp, { signal: options.signal });
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      if (err instanceof Deno.errors.NotFound && !(await exists(tmp)) && !(await exists(source))) {
        throw new RuntimeError(
          NATIVE_ERROR_CODES.SOURCE_MISSING,
          `the onnxruntime library ${sourcePath} is missing`,
          {
            hint: "from a checkout run `deno install`; a binary must be built by `deno task compile`, " +
              "which embeds this file",
            cause: err,
            details: { source: sourcePath },
          },
        );
      }
      if (isWriteRefusal(err)) throw unwritable(dir, cacheHome, err);
      throw err;
    }
    if (written.sha256 !== file.sha256 || written.bytes !== file.bytes) {
      await Deno.remove(tmp).catch(() => {});
      throw new RuntimeError(
        NATIVE_ERROR_CODES.SOURCE_CORRUPT,
        `${sourcePath} is not the onnxruntime ${ORT_VERSION} library for ${file.platform}: ` +
          `${written.bytes} bytes, sha256 ${written.sha256} (expected ${file.bytes} bytes, ${file.sha256})`,
        {
          hint: "reinstall the dependencies (`deno install --frozen`) or download the binary again",
          details: { source: sourcePath, sha256: written.sha256 },
        },
      );
    }
    try {
      await Deno.rename(tmp, path);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      // Windows refuses to replace a library another process has loaded; that one is valid then.
      if (await validCopy(path, file, { signal: options.signal })) return result(false);
      if (isWriteRefusal(err)) throw unwritable(dir, cacheHome, err);
      throw err;
    }
    return result(true);
  } finally {
    await lock.unlock().catch(() => {});
    lock.close();
  }
}

async function exists(p: string | URL): Promise<boolean> {
  try {
    await Deno.stat(p);
    return true;
  } catch {
    return false;
  }
}
