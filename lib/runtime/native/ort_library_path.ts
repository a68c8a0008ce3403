/**
 * Where the onnxruntime library lies when nobody says otherwise: the file the onnxruntime-node
 * package ships for this platform (`bin/napi-v6/<os>/<arch>/`). The runtime resolves it on the
 * main thread and hands the path to its Worker in the load request.
 * @module
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { RuntimeError } from "../../errors.ts";
import { ortLibraryName } from "./ort_api.ts";

/** The onnxruntime-node folder name of this platform's CPU architecture. */
function ortArch(arch: typeof Deno.build.arch): string {
  return arch === "aarch64" ? "arm64" : "x64";
}

/** The path of the onnxruntime library in the installed onnxruntime-node package. */
export function defaultOrtLibraryPath(): string {
  let pkg: string;
  try {
    pkg = dirname(createRequire(import.meta.url).resolve("onnxruntime-node/package.json"));
  } catch (cause) {
    throw new RuntimeError("BAD_LIBRARY", "the onnxruntime-node package is not installed", {
      hint: "run `deno install` in the project, or give the runtime an onnxruntime library path",
      cause,
    });
  }
  return join(pkg, "bin", "napi-v6", Deno.build.os, ortArch(Deno.build.arch), ortLibraryName());
}
