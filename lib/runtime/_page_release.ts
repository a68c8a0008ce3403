/**
 * Gives the memory under a typed array back to the kernel (Linux: `madvise(MADV_DONTNEED)` over
 * the whole pages inside it). Those pages read as zeros afterwards and take memory again only when
 * written. The KV cache slabs (kv_slab.ts) use it for the slots of closed sessions beyond what they
 * keep for reuse, so that a burst of long sessions does not hold its memory after they close.
 *
 * Best effort: where it cannot be done (not Linux, no libc, no FFI permission) `pageRelease`
 * returns undefined and the memory stays with the process, as any freed heap memory may.
 * @module
 */

const MADV_DONTNEED = 4;
const SC_PAGESIZE = 30;

/** Releases the pages inside `a` (partial pages at its ends are left as they are). */
export type PageRelease = (a: ArrayBufferView) => void;

let made: PageRelease | null | undefined;

/** The release function of this process, or undefined where pages cannot be released. */
export function pageRelease(): PageRelease | undefined {
  if (made !== undefined) return made ?? undefined;
  made = null;
  if (Deno.build.os !== "linux") return undefined;
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
      sysconf: { parameters: ["i32"], result: "i64" },
    });
  } catch {
    return undefined;
  }
  const page = BigInt(lib.symbols.sysconf(SC_PAGESIZE));
  if (page <= 0n) return undefined;
  const madvise = lib.symbols.madvise;
  made = (a) => {
    if (a.byteLength === 0) return;
    const p = Deno.UnsafePointer.value(Deno.UnsafePointer.of(a as unknown as BufferSource));
    const start = ((BigInt(p) + page - 1n) / page) * page;
    const end = ((BigInt(p) + BigInt(a.byteLength)) / page) * page;
    if (end > start) madvise(Deno.UnsafePointer.create(start), end - start, MADV_DONTNEED);
  };
  return made;
}
