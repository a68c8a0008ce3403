/**
 * The node's chain side against real outside parts: anvil + the agent_* proxy with the precompile
 * stand-ins, and the Oracle stub. A node whose swarm/runtime are fakes starts with the real chain
 * agent and reporter: it registers once (and not again on restart), heartbeats arrive, the
 * contribution counters the swarm server feeds reach the Oracle, and stop sends a final report.
 */
import assert from "node:assert/strict";
import { FakeGenerator } from "../lib/testing/mod.ts";
import { resolveConfig } from "../lib/config/resolve_config.ts";
import { createChainPart, createReporterPart } from "../lib/node/chain_part.ts";
import { createNode } from "../lib/node/node.ts";
import type { NodeParts } from "../lib/node/types.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import type { Metrics } from "../lib/util/metrics.ts";
import { startTestChain } from "./helpers/anvil.ts";
import { startOracleStub } from "./helpers/oracle_stub.ts";
import { waitFor } from "./helpers/wait_for.ts";

function fakeSwarmAndRuntime(metrics: () => Metrics): Omit<NodeParts, "chain" | "reporter"> {
  return {
    generator: new FakeGenerator(),
    runtime: {
      totalBlocks: () => Promise.resolve(4),
      load: () => Promise.resolve(),
      throughput: () => Promise.resolve(10),
      figures: () => undefined,
      stop: () => Promise.resolve(),
    },
    swarm: {
      start: () => Promise.resolve(),
      chooseSpan: () => Promise.resolve({ start: 0, end: 4 }),
      announce: () => Promise.resolve(),
      // "serving": the swarm server would count every step it computes; do it once here.
      serve: () => {
        metrics().addRequest();
        metrics().addTokens(17);
        metrics().observeLatency(3);
        return Promise.resolve();
      },
      drain: () => Promise.resolve(),
      stop: () => Promise.resolve(),
      status: () => ({}),
    },
  };
}

/** A node config on the test chain and Oracle stub, its API on a free loopback port. */
function chainNodeConfig(key: string, rpcUrl: string, oracleUrl: string, extra: Record<string, string>) {
  return resolveConfig({
    env: {
      PLUMISE_PRIVATE_KEY: key,
      PLUMISE_RPC_URL: rpcUrl,
      ORACLE_API_URL: oracleUrl,
      MODEL_NAME: "test-org/tiny-bloom",
      API_PORT: "0",
      API_HOST: "127.0.0.1",
      ...extra,
    },
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
}

Deno.test("node chain side: register once, heartbeat, reports carry the swarm counters, final report on stop", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const key = await chain.newFundedKey();
  const config = chainNodeConfig(key, chain.rpcUrl, oracle.url, { REPORT_INTERVAL: "10" });

  const run = async () => {
    const { logger, records } = memoryLogger("info");
    const node = createNode(config, {
      logger,
      parts: async (ctx) => {
        const chainPart = await createChainPart(ctx.config, ctx.metrics, ctx.logger);
        return {
          ...fakeSwarmAndRuntime(() => ctx.metrics),
          chain: chainPart,
          reporter: createReporterPart(ctx.config, chainPart, ctx.metrics, ctx.logger, { intervalMs: 200 }),
        };
      },
    });
    await node.start();
    return { node, records };
  };

  const first = await run();
  const address = (first.node.status().address)!;
  assert.equal(await chain.isRegistered(address), true);
  await waitFor(async () => (await chain.heartbeats(address)).length >= 1, { what: "a heartbeat" });
  await oracle.waitForAccepted(1);
  assert.equal(oracle.accepted[0].wallet, address);
  assert.equal(oracle.accepted[0].tokensProcessed, 17);
  assert.equal(oracle.accepted[0].requestCount, 1);
  const metrics = await (await fetch(`${first.node.apiUrl}/metrics`)).text();
  assert.match(metrics, /^plumise_registered 1$/m);
  assert.match(metrics, /^plumise_reports\{outcome="accepted"\} [1-9]/m);

  const before = oracle.accepted.length;
  await first.node.stop(500);
  assert.ok(oracle.accepted.length > before, "a final report was accepted at stop");
  assert.equal(oracle.accepted.at(-1)!.tokensProcessed, 17);

  // A restart does not register again.
  const second = await run();
  await second.node.stop(500);
  const registrations = (await chain.txsTo("0x0000000000000000000000000000000000000021", address))
    .filter((t) => t.status === 1);
  assert.equal(registrations.length, 1, "registered exactly once over two starts");
});

Deno.test("VERIFY_ON_CHAIN: each completed HTTP generation sends 0x20 and its proof rides the next report", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const key = await chain.newFundedKey();
  const config = chainNodeConfig(key, chain.rpcUrl, oracle.url, { VERIFY_ON_CHAIN: "true" });
  const node = createNode(config, {
    parts: async (ctx) => {
      const chainPart = await createChainPart(ctx.config, ctx.metrics, ctx.logger);
      return {
        ...fakeSwarmAndRuntime(() => ctx.metrics),
        chain: chainPart,
        reporter: createReporterPart(ctx.config, chainPart, ctx.metrics, ctx.logger, { intervalMs: 200 }),
      };
    },
  });
  await node.start();
  try {
    const address = node.status().address!;
    const r = await fetch(`${node.apiUrl}/api/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ inputs: "prove it", parameters: { max_new_tokens: 3 } }),
    });
    assert.equal((await r.json()).num_tokens, 3);
    await waitFor(
      async () =>
        (await chain.txsTo("0x0000000000000000000000000000000000000020", address)).some((t) =>
          t.status === 1
        ),
      { what: "a verifyInference tx" },
    );
    await waitFor(() => oracle.accepted.some((a) => a.proofs?.length === 1), {
      what: "a report with the proof",
    });
    const proof = oracle.accepted.find((a) => a.proofs?.length)!.proofs![0];
    assert.equal(proof.tokenCount, 3);
    assert.deepEqual(Object.keys(proof).sort(), ["inputHash", "modelHash", "outputHash", "tokenCount"]);
  } finally {
    await node.stop(500);
  }
});
