import assert from "node:assert/strict";
import { formatPlm } from "./preflight.ts";
import { autoClaimIntervalMs } from "./rewards.ts";

Deno.test("auto-claim period is max(5 × REPORT_INTERVAL, 300) s", () => {
  assert.equal(autoClaimIntervalMs(10), 300_000);
  assert.equal(autoClaimIntervalMs(60), 300_000);
  assert.equal(autoClaimIntervalMs(100), 500_000);
});

Deno.test("formatPlm shows 4 decimals", () => {
  assert.equal(formatPlm(0n), "0.0000 PLM");
  assert.equal(formatPlm(1234567890000000000n), "1.2345 PLM");
});
