/**
 * The release targets of the plumise binary: the `deno compile --target` triple, the asset name
 * (`plumise-<os>-<arch>[.exe]`) and the onnxruntime library the binary embeds, or why the target
 * is refused (no library in the package: it would start but could never serve a block).
 * @module
 */
import {
  missingReason,
  ortFileFor,
  type OrtPlatformFile,
  platformName,
} from "../lib/runtime/native/ort_files.ts";

export interface CompileTarget {
  /** `linux-x64`, `linux-arm64`, `macos-x64`, `macos-arm64`, `windows-x64`. */
  readonly name: string;
  /** Rust-style triple that `deno compile --target` takes. */
  readonly triple: string;
  /** File name of the release asset. */
  readonly asset: string;
  readonly os: typeof Deno.build.os;
  readonly arch: typeof Deno.build.arch;
  /** The onnxruntime library the binary embeds. */
  readonly ort?: OrtPlatformFile;
  /** Why this target is not built, when it is not. */
  readonly refused?: string;
}

function target(triple: string, os: typeof Deno.build.os, arch: typeof Deno.build.arch): CompileTarget {
  const name = platformName(os, arch);
  const ort = ortFileFor(os, arch);
  const reason = missingReason(os, arch);
  return {
    name,
    triple,
    asset: `plumise-${name}${os === "windows" ? ".exe" : ""}`,
    os,
    arch,
    ort,
    refused: reason
      ? `${reason}: a binary for ${name} could never serve a block, so it is not built (run from a checkout there instead)`
      : undefined,
  };
}

export const TARGETS: readonly CompileTarget[] = [
  target("x86_64-unknown-linux-gnu", "linux", "x86_64"),
  target("aarch64-unknown-linux-gnu", "linux", "aarch64"),
  target("x86_64-apple-darwin", "darwin", "x86_64"),
  target("aarch64-apple-darwin", "darwin", "aarch64"),
  target("x86_64-pc-windows-msvc", "windows", "x86_64"),
];

/** The target named `nameOrTriple` (`linux-x64` or `x86_64-unknown-linux-gnu`), or undefined. */
export function findTarget(nameOrTriple: string): CompileTarget | undefined {
  return TARGETS.find((t) => t.name === nameOrTriple || t.triple === nameOrTriple);
}

/** The target of the machine this runs on, if it is one. */
export function hostTarget(): CompileTarget | undefined {
  return TARGETS.find((t) => t.os === Deno.build.os && t.arch === Deno.build.arch);
}
