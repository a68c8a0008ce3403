import assert from "node:assert/strict";
import { benchZeros, hostileHeaders } from "./bench_hostile.ts";

Deno.test("bench hostile zeros: the reference splits every empty frame out; the reader refuses the first", () => {
  const r = benchZeros(1);
  assert.equal(r.reference_frames, 1024 * 1024 + 1, "the valid frame and a million empty ones");
  assert.ok(Number.isFinite(r.refuse_ms) && r.refuse_ms >= 0);
  assert.ok(Number.isFinite(r.ratio));
});

Deno.test("bench hostile frame: every hostile header is near the 4 MiB header cap", () => {
  for (const [name, header] of Object.entries(hostileHeaders())) {
    assert.ok(
      header.length > 3.9 * 1024 * 1024 && header.length <= 4 * 1024 * 1024,
      `${name}: ${header.length}`,
    );
  }
});
