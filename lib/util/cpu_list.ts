/**
 * CPU lists as Linux writes them (`taskset -c`, `/sys/…/cpulist`): `0,2,4-7`. Shared by the
 * `CPU_PINNING` configuration key and the runtime that pins its threads (lib/runtime/_cpu_affinity.ts).
 * @module
 */

/** Where a runtime's compute threads run: decided from the machine, never pinned, or these CPUs. */
export type CpuPinning = "auto" | "off" | readonly number[];

/**
 * The highest CPU number a list may name: 4096 CPUs, the masks' size (a kernel with more possible
 * CPUs refuses masks this small, and `auto` then says pinning was skipped and why).
 */
export const MAX_CPU = 4095;

/**
 * CPU numbers from a Linux-style list: `0,2,4-7` → `[0, 2, 4, 5, 6, 7]`, in the order written.
 * Throws `RangeError` naming the list and the bad part for anything else: empty parts, ranges that
 * run backwards, numbers over MAX_CPU, a CPU named twice.
 */
export function parseCpuList(s: string): number[] {
  const out: number[] = [];
  const bad = (why: string) =>
    new RangeError(`CPU list ${JSON.stringify(s)}: ${why} (expected e.g. "0,1" or "2-5")`);
  for (const part of s.split(",").map((p) => p.trim())) {
    const m = part.match(/^(\d+)(?:-(\d+))?$/);
    if (!m) throw bad(`${JSON.stringify(part)} is not a CPU number or range`);
    const from = Number(m[1]), to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw bad(`range ${part} runs backwards`);
    if (to > MAX_CPU) throw bad(`CPU ${to} is beyond ${MAX_CPU}`);
    for (let c = from; c <= to; c++) {
      if (out.includes(c)) throw bad(`CPU ${c} is named twice`);
      out.push(c);
    }
  }
  return out;
}

/** The list written back compactly: `[0, 1, 2, 5]` → `0-2,5`. */
export function formatCpuList(cpus: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < cpus.length;) {
    let j = i;
    while (j + 1 < cpus.length && cpus[j + 1] === cpus[j] + 1) j++;
    parts.push(j > i + 1 ? `${cpus[i]}-${cpus[j]}` : j === i + 1 ? `${cpus[i]},${cpus[j]}` : `${cpus[i]}`);
    i = j + 1;
  }
  return parts.join(",");
}
