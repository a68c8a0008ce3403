/**
 * Transparent huge pages for loaded weights (Linux). onnxruntime keeps each block's weights in
 * its own heap allocations; with 4 KiB pages a decode step walks tens of thousands of pages, and
 * every TLB miss is expensive under virtualization — worst when several server
 * processes take turns on the cores (each resumes with a cold TLB). After loading, the runtime
 * Worker asks the kernel to back the process's large, mostly resident anonymous mappings with
 * 2 MiB pages (`madvise(MADV_HUGEPAGE)` + a synchronous `MADV_COLLAPSE`, Linux ≥ 6.1; with THP
 * in its default "madvise" mode this is the only way to get them). What it gains, for one process
 * and for processes taking turns: docs/benchmarks.md, "Huge pages".
 *
 * Best effort: any failure (not Linux, no libc, no FFI permission, old kernel) is reported in
 * the result and changes nothing. The numbers computed never change, only page sizes.
 * @module
 */

const HUGE = 2n ** 21n;
const MADV_HUGEPAGE = 14;
const MADV_COLLAPSE = 25;

/** A page-aligned address range `[start, end)`. */
export interface AddressRange {
  start: bigint;
  end: bigint;
}

export interface HugePageResult {
  /** Ranges advised. */
  regions: number;
  /** Bytes in them. */
  bytes: number;
  /** Ranges the kernel could not collapse now (they may still become huge pages later). */
  notCollapsed: number;
  ms: number;
  /** Why nothing was done, when nothing was. */
  skipped?: string;
}

/**
 * The 2 MiB-aligned parts of the private anonymous read-write mappings in `/proc/<pid>/smaps`
 * text that are at least `minBytes` long and at least `minResident` resident (so advising them
 * does not commit memory that was never used).
 */
export function hugePageCandidates(smaps: string, minBytes = 4 * 2 ** 20, minResident = 0.5): AddressRange[] {
  const out: AddressRange[] = [];
  for (const entry of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const m = entry.match(/^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)[ \t]*(.*)$/m);
    if (!m) continue;
    const [, s, e, perms, inode, path] = m;
    if (perms !== "rw-p" || inode !== "0" || (path !== "" && path !== "[heap]")) continue;
    const from = BigInt(`0x${s}`), to = BigInt(`0x${e}`);
    const size = Number(to - from);
    const rss = Number(entry.match(/^Rss:\s+(\d+) kB/m)?.[1] ?? 0) * 1024;
    if (size < minBytes || rss < size * minResident) continue;
    const start = ((from + HUGE - 1n) / HUGE) * HUGE, end = (to / HUGE) * HUGE;
    if (end > start) out.push({ start, end });
  }
  return out;
}

/** Advises huge pages for this process's large resident anonymous mappings (see the module doc). */
export function adviseHugePages(): HugePageResult {
  const t0 = performance.now();
  const result = (r: Partial<HugePageResult>): HugePageResult => ({
    regions: 0,
    bytes: 0,
    notCollapsed: 0,
    ...r,
    ms: performance.now() - t0,
  });
  if (Deno.build.os !== "linux") return result({ skipped: `not Linux (${Deno.build.os})` });
  let ranges: AddressRange[];
  let lib: Deno.DynamicLibrary<{ madvise: { parameters: ["pointer", "usize", "i32"]; result: "i32" } }>;
  try {
    ranges = hugePageCandidates(Deno.readTextFileSync("/proc/self/smaps"));
    lib = Deno.dlopen("libc.so.6", { madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" } });
  } catch (err) {
    return result({ skipped: (err as Error).message });
  }
  let bytes = 0, notCollapsed = 0;
  try {
    for (const r of ranges) {
      const p = Deno.UnsafePointer.create(r.start);
      const len = r.end - r.start;
      lib.symbols.madvise(p, len, MADV_HUGEPAGE);
      if (lib.symbols.madvise(p, len, MADV_COLLAPSE) !== 0) notCollapsed++;
      bytes += Number(len);
    }
  } finally {
    lib.close();
  }
  return result({ regions: ranges.length, bytes, notCollapsed });
}
