import assert from "node:assert/strict";
import { STEP_BASE_MS, STEP_MAX_MS, STEP_MS_PER_TOKEN, stepDeadlineMs } from "./step_deadline.ts";

Deno.test("stepDeadlineMs grows with the step's tokens from a base to a cap", () => {
  assert.equal(stepDeadlineMs(1), STEP_BASE_MS + STEP_MS_PER_TOKEN);
  assert.equal(stepDeadlineMs(512), STEP_BASE_MS + 512 * STEP_MS_PER_TOKEN);
  assert.ok(stepDeadlineMs(1) < stepDeadlineMs(512) && stepDeadlineMs(512) < STEP_MAX_MS);
  assert.equal(stepDeadlineMs(1_000_000), STEP_MAX_MS, "a long replay gets the cap");
  // a session's own stepTimeoutMs caps it (tests and callers that want failures found sooner)
  assert.equal(stepDeadlineMs(1, 250), 250);
  assert.equal(stepDeadlineMs(0), STEP_BASE_MS);
});

Deno.test("a hung server is found and its prefill chunk replayed within the gateway's minute", () => {
  // the default prefill chunk is 512 tokens: finding the hang and replaying the chunk on another
  // server must both fit in the 60 s the gateway gives a first token (docs/protocol.md)
  assert.ok(2 * stepDeadlineMs(512) < 60_000);
});
