import assert from "node:assert/strict";
import { memoryLogger } from "../util/logger.ts";
import { registerNodeWithRetry } from "./node_registration.ts";

const signer = {
  address: "0x" + "12".repeat(20),
  signMessage: () => Promise.resolve("0x" + "ab".repeat(64) + "1b"),
};

/** An Oracle that answers 502 `downFor` times, then registers the node. */
function flakyOracle(downFor: number) {
  let calls = 0;
  const fetch = (() => {
    calls++;
    return Promise.resolve(
      calls <= downFor
        ? new Response("bad gateway", { status: 502 })
        : new Response(JSON.stringify({ success: true, message: "registered" }), { status: 201 }),
    );
  }) as typeof globalThis.fetch;
  return {
    fetch,
    get calls() {
      return calls;
    },
  };
}

const base = {
  oracleUrl: "http://oracle.test",
  signer,
  endpoint: "http://node.test:31331",
  backoffInitialMs: 1,
};

Deno.test("node registration: retried until the Oracle is back, however long (not 10 tries)", async () => {
  const oracle = flakyOracle(11); // before: it stopped after 10 tries
  const { logger } = memoryLogger();
  assert.equal(await registerNodeWithRetry({ ...base, fetch: oracle.fetch, logger }), true);
  assert.equal(oracle.calls, 12);
});

Deno.test("node registration: with a bound, the last failure says it gives up", async () => {
  const oracle = flakyOracle(99);
  const { logger, records } = memoryLogger();
  assert.equal(await registerNodeWithRetry({ ...base, fetch: oracle.fetch, logger, attempts: 3 }), false);
  assert.equal(oracle.calls, 3);
  assert.match(records.at(-1)!.msg, /giving up/);
  assert.equal(records.at(-1)!.level, "error");
});

Deno.test("node registration: 429, 408, 425 and 401 are retried; 400, 403 and 404 are not", async () => {
  for (
    const [status, retried] of [[429, true], [408, true], [425, true], [401, true], [400, false], [
      403,
      false,
    ], [404, false]] as const
  ) {
    let calls = 0;
    const fetch = (() => {
      calls++;
      return Promise.resolve(
        calls === 1
          ? new Response(JSON.stringify({ success: false, message: "no" }), { status })
          : new Response(JSON.stringify({ success: true, message: "registered" }), { status: 201 }),
      );
    }) as typeof globalThis.fetch;
    const { logger } = memoryLogger();
    assert.equal(await registerNodeWithRetry({ ...base, fetch, logger }), retried, String(status));
    assert.equal(calls, retried ? 2 : 1, String(status));
  }
});
