import assert from "node:assert/strict";
import { adviseHugePages, hugePageCandidates } from "./_huge_pages.ts";

const MiB = 2 ** 20;

function entry(from: number, to: number, perms: string, inode: number, path: string, rssKb: number): string {
  const hex = (n: number) => n.toString(16).padStart(12, "0");
  return [
    `${hex(from)}-${hex(to)} ${perms} 00000000 00:00 ${inode}${path ? "                " + path : ""}`,
    `Size:           ${(to - from) / 1024} kB`,
    `Rss:            ${rssKb} kB`,
    `AnonHugePages:        0 kB`,
  ].join("\n");
}

Deno.test("hugePageCandidates: large resident private anonymous rw mappings, aligned inward to 2 MiB", () => {
  const smaps = [
    entry(0x10_0000, 0x10_0000 + 64 * MiB, "rw-p", 0, "[heap]", 60 * 1024), // heap, 1 MiB-aligned start
    entry(0x4000_0000, 0x4000_0000 + 16 * MiB, "rw-p", 0, "", 16 * 1024), // anonymous, aligned
    entry(0x5000_0000, 0x5000_0000 + 16 * MiB, "rw-p", 0, "", 4 * 1024), // mostly not resident
    entry(0x6000_0000, 0x6000_0000 + 2 * MiB, "rw-p", 0, "", 2 * 1024), // too small
    entry(0x7000_0000, 0x7000_0000 + 16 * MiB, "r-xp", 1234, "/usr/lib/libonnxruntime.so", 16 * 1024),
    entry(0x8000_0000, 0x8000_0000 + 16 * MiB, "rw-p", 99, "/tmp/file", 16 * 1024), // file-backed
    entry(0x9000_0000, 0x9000_0000 + 16 * MiB, "rw-s", 0, "", 16 * 1024), // shared
    entry(0xa000_0000, 0xa000_0000 + 16 * MiB, "rw-p", 0, "[stack]", 16 * 1024),
  ].join("\n");
  const got = hugePageCandidates(smaps).map((r) => [Number(r.start), Number(r.end)]);
  assert.deepEqual(got, [
    [0x20_0000, 0x10_0000 + 64 * MiB - MiB], // start rounded up, end rounded down to 2 MiB
    [0x4000_0000, 0x4000_0000 + 16 * MiB],
  ]);
  assert.deepEqual(hugePageCandidates(""), []);
});

Deno.test("adviseHugePages: a large filled buffer of this process ends up in 2 MiB pages (Linux with THP)", () => {
  const thp = (() => {
    try {
      return Deno.readTextFileSync("/sys/kernel/mm/transparent_hugepage/enabled");
    } catch {
      return "";
    }
  })();
  const buf = new Float32Array(48 * MiB / 4).fill(1.5);
  const r = adviseHugePages();
  assert.equal(r.bytes % (2 * MiB), 0, `bytes ${r.bytes} is not a multiple of 2 MiB`);
  if (Deno.build.os !== "linux" || !thp || thp.includes("[never]")) {
    assert.ok(r.skipped !== undefined || r.regions >= 0);
    return;
  }
  assert.equal(r.skipped, undefined, `skipped: ${r.skipped}`);
  assert.ok(r.regions >= 1 && r.bytes >= 32 * MiB, JSON.stringify(r));
  // the mapping holding the middle of `buf` now has huge pages (its unaligned edges keep small ones)
  const at = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)!)) + BigInt(24 * MiB);
  const smaps = Deno.readTextFileSync("/proc/self/smaps");
  const mine = smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/).find((e) => {
    const [s, t] = e.slice(0, e.indexOf(" ")).split("-").map((h) => BigInt(`0x${h}`));
    return s <= at && at < t;
  });
  assert.ok(mine, "mapping of the buffer not found");
  const huge = Number(mine.match(/^AnonHugePages:\s+(\d+) kB/m)?.[1] ?? 0);
  assert.ok(huge >= 16 * 1024, `AnonHugePages ${huge} kB in the buffer's mapping`);
  assert.equal(buf[buf.length - 1], 1.5);
});
