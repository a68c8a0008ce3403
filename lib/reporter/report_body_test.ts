import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { Metrics } from "../util/metrics.ts";
import { buildReport, normalizeSignature, reportMessage, validateReportBody } from "./report_body.ts";

const wallet = new Wallet("0x" + "11".repeat(32));

Deno.test("reportMessage is the exact signed string", () => {
  assert.equal(
    reportMessage("0xAbC0000000000000000000000000000000000001", 42, 1700000000),
    '{"agent":"0xAbC0000000000000000000000000000000000001","processed_tokens":42,"timestamp":1700000000}',
  );
});

Deno.test("buildReport: exactly the whitelisted keys, signature recovers the wallet", async () => {
  const m = new Metrics({ now: () => 1_000_000 });
  m.addTokens(12);
  m.addRequest();
  m.observeLatency(3.333);
  const body = await buildReport({ signer: wallet, snapshot: m.snapshot(), timestamp: 1700000000 });
  assert.deepEqual(Object.keys(body), [
    "wallet",
    "tokensProcessed",
    "avgLatencyMs",
    "uptimeSeconds",
    "requestCount",
    "timestamp",
    "signature",
  ]);
  assert.equal(body.wallet, wallet.address);
  assert.equal(body.avgLatencyMs, 3.33);
  assert.match(body.signature, /^0x[0-9a-f]{130}$/);
  const { verifyMessage } = await import("ethers");
  assert.equal(verifyMessage(reportMessage(wallet.address, 12, 1700000000), body.signature), wallet.address);
});

Deno.test("validation: bad values are named; signatures normalised", () => {
  const good = {
    wallet: wallet.address,
    tokensProcessed: 1,
    avgLatencyMs: 0,
    uptimeSeconds: 0,
    requestCount: 0,
    timestamp: 1,
    signature: "0x" + "ab".repeat(64) + "1b",
  };
  assert.throws(
    () => validateReportBody({ ...good, tokensProcessed: -1 }),
    /tokensProcessed is not an integer ≥ 0: -1/,
  );
  assert.throws(() => validateReportBody({ ...good, tokensProcessed: 2e9 }), /1e9/);
  assert.throws(() => validateReportBody({ ...good, wallet: "bob" }), /wallet is not an address: "bob"/);
  assert.throws(() => validateReportBody({ ...good, signature: "0x12" }), /signature is not 0x \+ 130 hex/);
  assert.equal(normalizeSignature("ab".repeat(64) + "1c"), "0x" + "ab".repeat(64) + "1c");
  assert.equal(normalizeSignature("0x" + "ab".repeat(64) + "01"), "0x" + "ab".repeat(64) + "1c");
  const withProof = validateReportBody({
    ...good,
    proofs: [
      {
        modelHash: "0x" + "1".repeat(64),
        inputHash: "0x" + "2".repeat(64),
        outputHash: "0x" + "3".repeat(64),
        tokenCount: 2,
        extra: 1,
      } as never,
    ],
  });
  assert.deepEqual(Object.keys(withProof.proofs![0]), ["modelHash", "inputHash", "outputHash", "tokenCount"]);
});
