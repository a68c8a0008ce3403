import assert from "node:assert/strict";
import { ChainError } from "../errors.ts";
import { memoryLogger } from "../util/logger.ts";
import { PeriodicTask } from "./_periodic_task.ts";

Deno.test("PeriodicTask: stopped while a run waits on the RPC: not a failure, nothing logged", async () => {
  const { logger, records } = memoryLogger();
  let started!: () => void;
  const running = new Promise<void>((r) => (started = r));
  const task = new PeriodicTask({
    name: "heartbeat",
    intervalMs: 60_000,
    initialDelayMs: 0,
    logger,
    // what an RPC call does when its signal aborts: the abort mapped to CHAIN_TIMEOUT (toChainError)
    run: ({ signal }) =>
      new Promise((_, reject) => {
        started();
        signal.addEventListener("abort", () => reject(new ChainError("CHAIN_TIMEOUT", "eth_call timed out")));
      }),
  });
  task.start();
  await running;
  await task.stop();
  assert.equal(task.runs, 1);
  assert.equal(task.failures, 0, "before: counted as a failed heartbeat");
  assert.deepEqual(records.filter((r) => r.level === "warn").map((r) => r.msg), []);
});

Deno.test("PeriodicTask: a transient failure is counted and retried", async () => {
  const { logger, records } = memoryLogger();
  let calls = 0;
  let done!: () => void;
  const twice = new Promise<void>((r) => (done = r));
  const task = new PeriodicTask({
    name: "claim",
    intervalMs: 60_000,
    initialDelayMs: 0,
    backoff: { initialMs: 1, maxMs: 2 },
    logger,
    run: () => {
      if (++calls === 2) done();
      return calls === 1
        ? Promise.reject(new ChainError("CHAIN_TIMEOUT", "eth_call timed out"))
        : Promise.resolve();
    },
  });
  task.start();
  await twice;
  await task.stop();
  assert.equal(task.failures, 1);
  assert.ok(records.some((r) => r.level === "warn" && /claim failed; retrying/.test(r.msg)));
});
