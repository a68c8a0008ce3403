import assert from "node:assert/strict";
import {
  pushDeadlineMs,
  RERUN_BASE_MS,
  STEP_BASE_MS,
  STEP_MAX_MS,
  STEP_MS_PER_TOKEN_BLOCK,
  stepDeadlineMs,
} from "./step_deadline.ts";

Deno.test("stepDeadlineMs grows with the step's tokens and the span's blocks, from a base to a cap", () => {
  assert.equal(stepDeadlineMs(1, 1), STEP_BASE_MS + STEP_MS_PER_TOKEN_BLOCK);
  assert.equal(
    stepDeadlineMs(1, 64),
    STEP_BASE_MS + 64 * STEP_MS_PER_TOKEN_BLOCK,
    "a decode step: about 15 s",
  );
  assert.equal(stepDeadlineMs(512, 4), STEP_BASE_MS + 512 * 4 * STEP_MS_PER_TOKEN_BLOCK);
  assert.equal(stepDeadlineMs(100_000, 1), STEP_MAX_MS, "a long replay gets the cap");
  // a session's own stepTimeoutMs caps it (tests and callers that want failures found sooner)
  assert.equal(stepDeadlineMs(1, 8, { maxMs: 250 }), 250);
  assert.equal(stepDeadlineMs(1, 1, { baseMs: RERUN_BASE_MS }), RERUN_BASE_MS + STEP_MS_PER_TOKEN_BLOCK);
});

Deno.test("stepDeadlineMs: an honest slow span's prompt chunk is never cut shorter than the old minute", () => {
  // 40 Qwen3-32B-sized blocks at 1.2 ms per token per block: a 512-token chunk takes 24.6 s
  // (a review's probe: 15 s + 10 ms per token, blind to the blocks, cut it at 20.1 s and banned it)
  assert.ok(stepDeadlineMs(512, 40) >= 24_576);
  for (const blocks of [8, 16, 33, 64]) {
    assert.ok(stepDeadlineMs(512, blocks) >= Math.min(STEP_MAX_MS, 512 * blocks * 4.1), `${blocks} blocks`);
  }
});

Deno.test("pushDeadlineMs: a decode push is found hung in about 15 s; a long one keeps a span's cap per span", () => {
  // the code before this session's changes: 60 s per span of the push, 300 s for five
  assert.ok(pushDeadlineMs(1, [16, 16, 16, 16, 16]) < 16_000);
  assert.equal(pushDeadlineMs(512, [16, 16, 16, 16]), Math.min(4 * STEP_MAX_MS, STEP_BASE_MS + 512 * 64 * 5));
  assert.equal(pushDeadlineMs(100_000, [8, 8]), 2 * STEP_MAX_MS);
  assert.equal(pushDeadlineMs(1, [4, 4, 4], 40), 120, "a session's stepTimeoutMs, per span");
});
