/**
 * The onnxruntime shared library of each platform, as the `onnxruntime-node` npm package ships it
 * (`bin/napi-v6/<os>/<arch>/`), with its pinned size and sha256. The engine reaches onnxruntime
 * through its C API with Deno FFI, so one file per platform is all the node needs: no `.node`
 * addon, and none of the DirectML files that the Windows folder also holds (they serve only the
 * DirectML execution provider, which this node does not use).
 *
 * A test keeps this table equal to the files in `node_modules`; `scripts/compile.ts` embeds only
 * the target's file into a binary. See docs/operations.md ("Native engine files").
 * @module
 */

/** The onnxruntime release the package (and so every binary) carries. */
export const ORT_VERSION = "1.30.0";

/** Where the package keeps its native files, relative to the repository root. */
export const ORT_PACKAGE_BIN = "node_modules/onnxruntime-node/bin/napi-v6";

/** One platform's library file. */
export interface OrtPlatformFile {
  /** Platform name used in asset and cache folder names, e.g. `linux-x64`. */
  readonly platform: string;
  /** `Deno.build.os` / `Deno.build.arch` it serves. */
  readonly os: typeof Deno.build.os;
  readonly arch: typeof Deno.build.arch;
  /** The package's folder under {@link ORT_PACKAGE_BIN}, e.g. `linux/x64`. */
  readonly packageDir: string;
  /**
   * File name; on macOS the name the library's install name (`@rpath/libonnxruntime.1.dylib`)
   * asks for, so that anything resolving it by name finds this copy.
   */
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
}

/** Every platform the package ships a library for. macOS x64 is not among them (see {@link ortFileFor}). */
export const ORT_FILES: readonly OrtPlatformFile[] = [
  {
    platform: "linux-x64",
    os: "linux",
    arch: "x86_64",
    packageDir: "linux/x64",
    file: "libonnxruntime.so.1",
    bytes: 45_828_512,
    sha256: "ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23",
  },
  {
    platform: "linux-arm64",
    os: "linux",
    arch: "aarch64",
    packageDir: "linux/arm64",
    file: "libonnxruntime.so.1",
    bytes: 25_135_496,
    sha256: "1f549d46250b005580b597f4164984aaf75b3bcb9f3aeb07c7f8a8fe60b23c76",
  },
  {
    platform: "macos-arm64",
    os: "darwin",
    arch: "aarch64",
    packageDir: "darwin/arm64",
    file: "libonnxruntime.1.dylib",
    bytes: 44_589_928,
    sha256: "685d2be5dba1309c89d3a5324b7fd06a5c42f1a61bfea32d14c4cc28d072121d",
  },
  {
    platform: "windows-x64",
    os: "windows",
    arch: "x86_64",
    packageDir: "win32/x64",
    file: "onnxruntime.dll",
    bytes: 28_754_232,
    sha256: "508c362f5673483dd3a086379c392795b2e42d10d5e6f3f90ebd7ac21c97af67",
  },
  {
    platform: "windows-arm64",
    os: "windows",
    arch: "aarch64",
    packageDir: "win32/arm64",
    file: "onnxruntime.dll",
    bytes: 29_815_136,
    sha256: "6c3a2abf5c6aca11c48a0d338a91af309f2266f25ce2e4084e6a87bbcb0fbfd0",
  },
];

/** `linux-x64`-style name of an os/arch pair (`macos`, `windows`; `x64`, `arm64`). */
export function platformName(os: string, arch: string): string {
  const o = os === "darwin" ? "macos" : os;
  const a = arch === "x86_64" ? "x64" : arch === "aarch64" ? "arm64" : arch;
  return `${o}-${a}`;
}

/** Why a platform has no library, or undefined when it has one. */
export function missingReason(os: string, arch: string): string | undefined {
  if (ORT_FILES.some((f) => f.os === os && f.arch === arch)) return undefined;
  if (os === "darwin" && arch === "x86_64") {
    return `onnxruntime-node ${ORT_VERSION} ships no macOS x64 (Intel) library (only darwin/arm64)`;
  }
  return `onnxruntime-node ${ORT_VERSION} ships no library for ${platformName(os, arch)}`;
}

/** The library of `os`/`arch`, or undefined (see {@link missingReason}). */
export function ortFileFor(os: string, arch: string): OrtPlatformFile | undefined {
  return ORT_FILES.find((f) => f.os === os && f.arch === arch);
}
