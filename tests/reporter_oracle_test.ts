/**
 * The Oracle reporter against the Oracle stub (which enforces the real Oracle's checks) and a
 * real chain for the registration check.
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { registerNode } from "../lib/reporter/node_registration.ts";
import { fetchOracleAgentView } from "../lib/reporter/oracle_agent_view.ts";
import { OracleReporter } from "../lib/reporter/oracle_reporter.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import { Metrics } from "../lib/util/metrics.ts";
import { startTestChain } from "./helpers/anvil.ts";
import { startOracleStub } from "./helpers/oracle_stub.ts";
import { waitFor } from "./helpers/wait_for.ts";

const INTERVAL = 150;

Deno.test("reports are accepted, cumulative, and survive an Oracle outage without losing tokens", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const key = chain.fundedKeys[1];
  await chain.registerAgent(key);
  const metrics = new Metrics();
  const { logger, records } = memoryLogger();
  const reporter = new OracleReporter({
    oracleUrl: oracle.url,
    signer: new Wallet(key),
    metrics,
    intervalMs: INTERVAL,
    logger,
    timeoutMs: 1000,
  });
  metrics.addTokens(10);
  metrics.addRequest();
  metrics.observeLatency(12.345);
  reporter.start();
  await oracle.waitForAccepted(1);
  assert.equal(oracle.accepted[0].tokensProcessed, 10);
  assert.equal(oracle.accepted[0].requestCount, 1);
  assert.equal(oracle.accepted[0].avgLatencyMs, 12.35);
  metrics.addTokens(5);
  metrics.addRequest();
  await waitFor(() => oracle.accepted.at(-1)!.tokensProcessed === 15, { what: "cumulative 15 tokens" });
  assert.equal(oracle.accepted.at(-1)!.requestCount, 2);

  // Oracle down for several intervals while tokens keep being counted.
  await oracle.stop();
  const failedBefore = reporter.status().failed;
  metrics.addTokens(100);
  await waitFor(() => reporter.status().failed >= failedBefore + 3, { what: "3 failed reports" });
  metrics.addTokens(7);
  metrics.addRequest();
  assert.ok(records.some((r) => r.level === "warn" && /next one carries the cumulative totals/.test(r.msg)));
  const acceptedBefore = oracle.accepted.length;
  await oracle.restart();
  await oracle.waitForAccepted(acceptedBefore + 1);
  const after = oracle.accepted[acceptedBefore];
  assert.equal(after.tokensProcessed, 122, "no counted token was lost");
  assert.equal(after.requestCount, 3);

  // timestamps strictly increase; the stub never saw a replay
  const ts = oracle.accepted.map((r) => r.timestamp);
  for (let i = 1; i < ts.length; i++) assert.ok(ts[i] > ts[i - 1]);
  assert.equal(oracle.rejected.filter((r) => /Replay/.test(r.message)).length, 0);

  // final report on stop
  metrics.addTokens(1);
  const n = oracle.accepted.length;
  await reporter.stop();
  await reporter.stop();
  assert.equal(oracle.accepted.length, n + 1);
  assert.equal(oracle.accepted.at(-1)!.tokensProcessed, 123);

  // the Oracle's view, as `plumise status` shows it
  const view = await fetchOracleAgentView(oracle.url, new Wallet(key).address);
  assert.equal(view.tokensProcessed, 123);
});

Deno.test("a clock skewed by 61 s is rejected by the Oracle and warned about once", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl, skewSeconds: 61 });
  const key = chain.fundedKeys[2];
  await chain.registerAgent(key);
  const { logger, records } = memoryLogger();
  const reporter = new OracleReporter({
    oracleUrl: oracle.url,
    signer: new Wallet(key),
    metrics: new Metrics(),
    intervalMs: INTERVAL,
    logger,
  });
  reporter.start();
  await oracle.waitForRejected(3);
  await reporter.stop();
  assert.equal(oracle.accepted.length, 0);
  assert.ok(oracle.rejected.every((r) => r.status === 401));
  const skewWarnings = records.filter((r) => /clock skew/.test(r.msg));
  assert.equal(skewWarnings.length, 1);
  assert.ok(Math.abs(Number(skewWarnings[0].skewSeconds) - 61) <= 1);
  assert.equal(reporter.status().skewSeconds! >= 60, true);
  // 401 message from the Oracle is logged, once (not a storm)
  const refusals = records.filter((r) => r.level === "warn" && /Invalid signature/.test(String(r.error)));
  assert.equal(refusals.length, 1, JSON.stringify(records.filter((r) => r.level === "warn")));
});

Deno.test("an unregistered agent gets 400 from the Oracle: logged, one attempt per interval, no spin", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const { logger, records } = memoryLogger();
  const reporter = new OracleReporter({
    oracleUrl: oracle.url,
    signer: new Wallet(chain.fundedKeys[3]),
    metrics: new Metrics(),
    intervalMs: INTERVAL,
    logger,
  });
  const t0 = Date.now();
  reporter.start();
  await oracle.waitForRejected(3);
  await reporter.stop();
  const elapsed = Date.now() - t0;
  assert.ok(
    oracle.reportAttempts() <= Math.ceil(elapsed / INTERVAL) + 1,
    `${oracle.reportAttempts()} attempts in ${elapsed} ms`,
  );
  assert.ok(records.some((r) => /Agent not registered on-chain/.test(String(r.error))));
});

Deno.test("an Oracle that answers 500, garbage or never: logged retries, no crash, recovery", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const key = chain.fundedKeys[4];
  await chain.registerAgent(key);
  const metrics = new Metrics();
  const { logger, records } = memoryLogger();
  const reporter = new OracleReporter({
    oracleUrl: oracle.url,
    signer: new Wallet(key),
    metrics,
    intervalMs: INTERVAL,
    logger,
    timeoutMs: 300,
    finalTimeoutMs: 300,
  });
  reporter.start();
  for (const mode of ["http500", "garbage", "hang"] as const) {
    oracle.setMode(mode);
    const failed = reporter.status().failed;
    metrics.addTokens(3);
    await waitFor(() => reporter.status().failed >= failed + 2, { what: `failures in mode ${mode}` });
    assert.ok(records.some((r) => r.level === "warn"), mode);
  }
  assert.match(records.map((r) => String(r.error)).join("\n"), /500/);
  assert.match(records.map((r) => String(r.error)).join("\n"), /without success/);
  assert.match(records.map((r) => String(r.error)).join("\n"), /no answer within 300 ms/);
  oracle.setMode("ok");
  await oracle.waitForAccepted(1);
  assert.equal(oracle.accepted[0].tokensProcessed, 9);
  await reporter.stop();
});

Deno.test("proofs carry only the four allowed keys and are accepted", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const key = chain.fundedKeys[5];
  await chain.registerAgent(key);
  const reporter = new OracleReporter({
    oracleUrl: oracle.url,
    signer: new Wallet(key),
    metrics: new Metrics(),
    intervalMs: 60_000,
  });
  const proof = {
    modelHash: "0x" + "ab".repeat(32),
    inputHash: "0x" + "cd".repeat(32),
    outputHash: "0x" + "ef".repeat(32),
    tokenCount: 4,
    agentAddress: "0x00",
    proofHash: "0x00",
  };
  reporter.addProof(proof);
  const outcome = await reporter.reportNow();
  assert.equal(outcome.ok, true);
  assert.deepEqual(oracle.accepted[0].proofs, [{
    modelHash: proof.modelHash,
    inputHash: proof.inputHash,
    outputHash: proof.outputHash,
    tokenCount: 4,
  }]);
  // sent proofs are not sent again; two immediate reports get distinct timestamps
  const second = await reporter.reportNow();
  assert.equal(second.ok, true);
  assert.equal(oracle.accepted[1].proofs, undefined);
  assert.ok(oracle.accepted[1].timestamp > oracle.accepted[0].timestamp);
  await reporter.stop();
});

Deno.test("node registration with the Oracle (PUBLIC_URL)", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const wallet = new Wallet(chain.fundedKeys[6]);
  await registerNode({
    oracleUrl: oracle.url,
    signer: wallet,
    endpoint: "http://127.0.0.1:31331/",
    benchmarkTokPerSec: 12.5,
  });
  assert.equal(oracle.nodeRegistrations.length, 1);
  assert.equal(oracle.nodeRegistrations[0].address, wallet.address);
  assert.equal(oracle.nodeRegistrations[0].endpoint, "http://127.0.0.1:31331");
  assert.deepEqual(oracle.nodeRegistrations[0].capabilities, ["text-generation"]);
  await assert.rejects(
    registerNode({ oracleUrl: oracle.url, signer: wallet, endpoint: "ftp://x" }),
    /PUBLIC_URL "ftp:\/\/x" is not an http/,
  );
  // a skewed clock is refused for now (401): retried (NTP may put it right), the hint says so
  await assert.rejects(
    registerNode({
      oracleUrl: oracle.url,
      signer: wallet,
      endpoint: "http://127.0.0.1:1",
      now: () => Date.now() - 120_000,
    }),
    (err: { code?: string; hint?: string }) => err.code === "ORACLE_BAD_REPLY" && /NTP/.test(err.hint ?? ""),
  );
});
