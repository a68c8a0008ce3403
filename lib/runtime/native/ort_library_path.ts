/**
 * The onnxruntime library a runtime loads when its options name none: the verified copy that
 * `ensureOrtLibrary` keeps in the cache folder (ort_library.ts), resolved once per process on the
 * main thread; the path travels to the runtime Worker in its load request.
 * @module
 */
import type { AbortOptions } from "../../util/abort.ts";
import { ensureOrtLibrary } from "./ort_library.ts";

let resolved: Promise<string> | undefined;

/** `explicit` when given, else the cached library's path (checked once per process). */
export function resolveOrtLibrary(explicit?: string, { signal }: AbortOptions = {}): Promise<string> {
  if (explicit) return Promise.resolve(explicit);
  resolved ??= ensureOrtLibrary({ signal }).then((l) => l.path).catch((err) => {
    resolved = undefined; // a later start tries again
    throw err;
  });
  return resolved;
}
