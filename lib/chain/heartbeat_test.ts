import assert from "node:assert/strict";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, heartbeatLeadMs, heartbeatPeriodMs } from "./heartbeat.ts";

Deno.test("heartbeat: sent a tenth early (at most 30 s), so the next lands within the interval", () => {
  assert.equal(heartbeatPeriodMs(DEFAULT_HEARTBEAT_INTERVAL_MS), 270_000);
  assert.equal(heartbeatLeadMs(3_600_000), 30_000);
  assert.equal(heartbeatPeriodMs(3_600_000), 3_570_000);
  assert.equal(heartbeatPeriodMs(1000), 900);
  assert.equal(heartbeatPeriodMs(1), 1);
  // mined 3 s (a block) after each send, two heartbeats land 273 s apart: inside the 300 s window
  // within which an agent counts as active (a 300 s period gave 303 s and a gap each time)
  assert.ok(heartbeatPeriodMs(300_000) + 3_000 <= 300_000);
});
