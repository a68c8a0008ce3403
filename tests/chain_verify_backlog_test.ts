/**
 * VERIFY_ON_CHAIN under a flood of generations (issue 21 item 9): the 0x20 attestations are
 * low-priority and bounded, so anonymous API callers cannot queue transactions without limit
 * ahead of heartbeats and claims. Extra ones are dropped with a counter in /metrics and a log line.
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { sendHeartbeat } from "../lib/chain/heartbeat.ts";
import { resolveConfig } from "../lib/config/resolve_config.ts";
import { createChainPart } from "../lib/node/chain_part.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import { Metrics } from "../lib/util/metrics.ts";
import { PRECOMPILE_VERIFY, startTestChain } from "./helpers/anvil.ts";
import { waitFor } from "./helpers/wait_for.ts";

const GENERATIONS = 50;
const LOW_QUEUE = 8; // TxQueue's default maxLowQueued

Deno.test("VERIFY_ON_CHAIN: attestations are bounded and go after heartbeats; drops are counted in /metrics", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[8];
  const address = new Wallet(key).address;
  const config = resolveConfig({
    env: {
      PLUMISE_PRIVATE_KEY: key,
      PLUMISE_RPC_URL: chain.rpcUrl,
      PLUMISE_CHAIN_ID: String(chain.chainId),
      VERIFY_ON_CHAIN: "true",
      HEARTBEAT_INTERVAL: "3600",
    },
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
  const metrics = new Metrics();
  const { logger, records } = memoryLogger("info");
  const part = await createChainPart(config, metrics, logger);
  try {
    await part.start({ signal: new AbortController().signal });
    await waitFor(() => part.agent.status().lastHeartbeatTx, { what: "the first heartbeat" });
    await chain.rpc("evm_setAutomine", [false]);

    // A flood of finished generations while the chain mines nothing.
    for (let i = 0; i < GENERATIONS; i++) part.recordInference!(`prompt ${i}`, `output ${i}`, 3);
    const dropped = GENERATIONS - 1 - LOW_QUEUE; // one in flight, LOW_QUEUE waiting
    await waitFor(() => part.agent.status().verifyDropped >= dropped, { what: "the drops" });
    assert.equal(part.agent.status().verifyDropped, dropped);
    assert.match(metrics.renderPrometheus(), new RegExp(`^plumise_verify_dropped_total ${dropped}$`, "m"));
    const warnings = records.filter((r) => r.level === "warn" && /verifyInference dropped/.test(r.msg));
    assert.equal(warnings.length, 1, "one log line for the burst, not one per drop");
    assert.equal(warnings[0].dropped, 1);

    // A heartbeat issued now goes right after the attestation in flight, before the waiting ones.
    const heartbeat = sendHeartbeat(part.agent.queue);
    await chain.rpc("evm_setAutomine", [true]);
    await chain.rpc("evm_mine");
    const hb = await heartbeat;
    const verified = await chain.txsTo(PRECOMPILE_VERIFY, address);
    assert.equal(hb.status, 1);
    assert.equal(hb.nonce, verified[0].nonce + 1, "the heartbeat jumped the attestation queue");
    await waitFor(async () => (await chain.txsTo(PRECOMPILE_VERIFY, address)).length === 1 + LOW_QUEUE, {
      what: "the waiting attestations",
    });
  } finally {
    await part.stop();
  }
});
