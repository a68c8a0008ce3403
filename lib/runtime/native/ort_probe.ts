/**
 * The smallest proof that an onnxruntime library loads on this machine: `dlopen` it, call
 * `OrtGetApiBase()` and read `GetVersionString()` from the returned `OrtApiBase`
 * (`{GetApi, GetVersionString}`, two function pointers, stable across releases). Used by
 * `plumise doctor`; the engine's own binding loads the library the same way.
 * @module
 */
import { errorMessage, RuntimeError } from "../../errors.ts";
import { NATIVE_ERROR_CODES } from "./ort_library.ts";

export interface OrtProbe {
  /** What the library says its version is, e.g. `1.30.0`. */
  version: string;
}

const SYMBOLS = { OrtGetApiBase: { parameters: [], result: "pointer" } } as const;

/** Loads `path`, asks it for its version and unloads it. Throws `RuntimeError` NATIVE_LOAD_FAILED. */
export function probeOrtLibrary(path: string): OrtProbe {
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (err) {
    throw new RuntimeError(NATIVE_ERROR_CODES.LOAD_FAILED, `cannot load ${path}: ${errorMessage(err)}`, {
      hint: Deno.build.os === "windows"
        ? "install the Microsoft Visual C++ Redistributable (x64), which onnxruntime.dll needs"
        : Deno.build.os === "linux"
        ? "the library needs glibc ≥ 2.28 and libstdc++ (Debian 10+, Ubuntu 20.04+); a musl system (Alpine) cannot load it"
        : "check that the file is the one for this machine's architecture",
      cause: err,
      details: { path },
    });
  }
  try {
    const base = lib.symbols.OrtGetApiBase();
    if (base === null) throw new Error("OrtGetApiBase returned NULL");
    const fn = new Deno.UnsafePointerView(base).getPointer(8);
    if (fn === null) throw new Error("OrtApiBase.GetVersionString is NULL");
    const def = { parameters: [], result: "pointer" } as const;
    const getVersion = new Deno.UnsafeFnPointer(fn as Deno.PointerObject<typeof def>, def);
    const str = getVersion.call();
    if (str === null) throw new Error("GetVersionString returned NULL");
    return { version: Deno.UnsafePointerView.getCString(str) };
  } catch (err) {
    throw new RuntimeError(
      NATIVE_ERROR_CODES.LOAD_FAILED,
      `${path} loaded but is not a working onnxruntime library: ${errorMessage(err)}`,
      { hint: "delete the file; the next start copies it again", cause: err, details: { path } },
    );
  } finally {
    lib.close();
  }
}
