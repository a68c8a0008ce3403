/**
 * The chain agent against a real local chain (anvil + Plumise stand-ins + agent_* proxy).
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { ChainAgent, type ChainAgentOptions } from "../lib/chain/chain_agent.ts";
import {
  AGENT_REGISTER_ADDRESS,
  agentName,
  encodeRegistration,
  modelHash,
} from "../lib/chain/agent_registration.ts";
import { AGENT_HEARTBEAT_ADDRESS, HEARTBEAT_GAS } from "../lib/chain/heartbeat.ts";
import { CLAIM_GAS } from "../lib/chain/rewards.ts";
import { ConfigError } from "../lib/errors.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import {
  AGENT_REGISTRY,
  PRECOMPILE_VERIFY,
  REWARD_POOL,
  startTestChain,
  verifyIface,
} from "./helpers/anvil.ts";
import { waitFor } from "./helpers/wait_for.ts";

const MODEL = "bigscience/bloom-560m";
const PLM = 10n ** 18n;

function agentOptions(
  rpcUrl: string,
  key: string,
  extra: Partial<ChainAgentOptions> = {},
): ChainAgentOptions {
  return {
    wallet: new Wallet(key),
    rpcUrl,
    chainId: 41956,
    model: MODEL,
    claimThresholdWei: PLM,
    reportInterval: 60,
    heartbeatIntervalMs: 3_600_000,
    claimIntervalMs: 3_600_000,
    receiptPollMs: 50,
    rpcTimeoutMs: 3000,
    retryBackoff: { initialMs: 100, maxMs: 500 },
    ...extra,
  };
}

Deno.test("registration happens once across three restarts; heartbeats arrive at the configured period", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[1];
  const address = new Wallet(key).address;
  for (let run = 0; run < 3; run++) {
    const { logger } = memoryLogger();
    const agent = new ChainAgent(agentOptions(chain.rpcUrl, key, { logger, heartbeatIntervalMs: 1000 }));
    await agent.start();
    assert.equal(agent.status().state, "online");
    assert.equal(agent.status().registered, true);
    assert.equal(agent.status().registrationSource, run === 0 ? "transaction" : "agent_isAgentAccount");
    await waitFor(() => agent.status().lastHeartbeatTx, { what: "a heartbeat" });
    await agent.stop();
    await agent.stop(); // idempotent
  }
  const registrations = await chain.txsTo(AGENT_REGISTER_ADDRESS, address);
  assert.equal(registrations.length, 1, "exactly one 0x21 transaction");
  assert.equal(registrations[0].status, 1);
  const info = await chain.agentInfo(address);
  assert.equal(info.modelHash, modelHash(MODEL));
  assert.notEqual(info.modelHash, "0x" + "0".repeat(64));
  assert.equal(
    Buffer.from(info.name.slice(2), "hex").toString("utf8").replace(/\0+$/, ""),
    agentName(MODEL, address),
  );
  assert.match(agentName(MODEL, address), /^bloom-560m-[0-9a-fA-F]{8}$/);

  // Heartbeat period: one long-running agent, 2 s interval → sent a tenth early (1.8 s after the last
  // was mined), so they land at most 2 s apart and no sooner than 1 s (block time, whole seconds).
  const agent = new ChainAgent(agentOptions(chain.rpcUrl, key, { heartbeatIntervalMs: 2000 }));
  const before = (await chain.heartbeats(address)).length;
  await agent.start();
  await waitFor(async () => (await chain.heartbeats(address)).length >= before + 4, {
    what: "4 heartbeats",
    timeoutMs: 20_000,
  });
  await agent.stop();
  const times = (await chain.heartbeats(address)).slice(before);
  for (let i = 1; i < times.length; i++) {
    const gap = times[i] - times[i - 1];
    assert.ok(gap >= 1 && gap <= 2, `heartbeat gap ${gap} s: ${times}`);
  }
  const hbTxs = await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address);
  assert.ok(hbTxs.every((t) => t.status === 1), "no heartbeat reverted");
});

Deno.test("nonces never collide when register, heartbeat and claim are issued together", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[2];
  const address = new Wallet(key).address;
  await chain.setPending(address, 3n * PLM);
  const agent = new ChainAgent(agentOptions(chain.rpcUrl, key));
  try {
    const q = agent.queue;
    const data = encodeRegistration({ name: agentName(MODEL, address), modelHash: modelHash(MODEL) });
    const results = await Promise.all([
      q.send({ to: AGENT_REGISTER_ADDRESS, data, gasLimit: 300_000n, label: "register" }),
      q.send({ to: AGENT_HEARTBEAT_ADDRESS, data: "0x", gasLimit: HEARTBEAT_GAS, label: "heartbeat" }),
      q.send({ to: REWARD_POOL, data: agent.pool.claimData(), gasLimit: CLAIM_GAS, label: "claim" }),
      q.send({ to: AGENT_HEARTBEAT_ADDRESS, data: "0x", gasLimit: HEARTBEAT_GAS, label: "heartbeat" }),
    ]);
    assert.deepEqual(results.map((r) => r.status), [1, 1, 1, 1]);
    const nonces = results.map((r) => r.nonce);
    assert.deepEqual(nonces, [0, 1, 2, 3]);
    // Someone else used the wallet's nonce behind the queue's back: it re-reads and goes on.
    await chain.rpc("anvil_setNonce", [address, "0x" + (10).toString(16)]);
    const after = await q.send({
      to: AGENT_HEARTBEAT_ADDRESS,
      data: "0x",
      gasLimit: HEARTBEAT_GAS,
      label: "heartbeat",
    });
    assert.equal(after.status, 1);
    assert.equal(after.nonce, 10);
  } finally {
    await agent.stop();
  }
});

Deno.test("auto-claim claims exactly when pending ≥ threshold and > 0; balance rises by amount minus gas", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[3];
  const address = new Wallet(key).address;
  const outcomes: Array<{ claimed: boolean; reason?: string }> = [];
  const agent = new ChainAgent(
    agentOptions(chain.rpcUrl, key, { claimIntervalMs: 200, onClaimCheck: (o) => outcomes.push(o) }),
  );
  await agent.start();
  try {
    // nothing pending: no claim (the old node claimed 0 when the threshold was 0)
    await waitFor(() => outcomes.length >= 2, { what: "two claim checks" });
    assert.ok(outcomes.every((o) => !o.claimed && /no pending/.test(o.reason!)));
    // below the threshold
    await chain.setPending(address, PLM / 2n);
    const n = outcomes.length;
    await waitFor(() => outcomes.length >= n + 2, { what: "two more claim checks" });
    assert.ok(outcomes.slice(n + 1).every((o) => !o.claimed && /below the threshold/.test(o.reason!)));
    assert.equal((await chain.txsTo(REWARD_POOL, address)).length, 0, "no claim tx below the threshold");
    // at the threshold: claimed once
    const amount = PLM;
    await chain.setPending(address, amount);
    const balanceBefore = await chain.balance(address);
    await waitFor(() => agent.status().lastClaim, { what: "a claim" });
    const claim = agent.status().lastClaim!;
    assert.equal(claim.amountWei, amount.toString());
    const claimTxs = await chain.txsTo(REWARD_POOL, address);
    assert.equal(claimTxs.length, 1);
    const receipt = await agent.provider.getReceipt(claimTxs[0].hash);
    const gas = receipt!.gasUsed * receipt!.effectiveGasPrice;
    // only the claim tx could have spent gas in between? heartbeats are hourly here; check exactly:
    const hbAfter = (await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address)).filter((t) =>
      t.blockNumber > claimTxs[0].blockNumber - 1
    );
    assert.equal(hbAfter.length, 0);
    assert.equal(await chain.balance(address), balanceBefore + amount - gas);
    assert.equal(await chain.pending(address), 0n);
  } finally {
    await agent.stop();
  }
});

Deno.test("offline mode: a dead or garbage RPC never crashes start(); the agent comes online when the RPC does", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[4];
  for (const fault of ["http500", "garbage", "wrongShape", "hang"] as const) {
    chain.proxy.setFault(fault);
    const { logger, records } = memoryLogger();
    const agent = new ChainAgent(agentOptions(chain.rpcUrl, key, { logger, rpcTimeoutMs: 300 }));
    await agent.start();
    assert.equal(agent.status().state, "offline", fault);
    assert.ok(records.some((r) => r.level === "warn" && /offline mode/.test(r.msg)), fault);
    await waitFor(() => records.filter((r) => /still unreachable/.test(r.msg)).length >= 2, {
      what: `retries (${fault})`,
    });
    chain.proxy.setFault("none");
    await waitFor(() => agent.status().state === "online", { what: `online after ${fault}` });
    assert.equal(agent.status().registered, true);
    // retries were spaced by backoff, not a hot loop
    const retries = records.filter((r) => /still unreachable/.test(r.msg)).length;
    assert.ok(retries < 50, `${retries} retries`);
    await agent.stop();
  }
  // a closed port
  const dead = new ChainAgent(agentOptions("http://127.0.0.1:9", key));
  await dead.start();
  assert.equal(dead.status().state, "offline");
  assert.match(dead.status().lastError!, /eth_chainId/);
  await dead.stop();
  assert.equal((await chain.txsTo(AGENT_REGISTER_ADDRESS, new Wallet(key).address)).length, 1);
});

Deno.test("an unfunded wallet is told apart from an unreachable chain: it says to send gas, and comes online once funded", async () => {
  await using chain = await startTestChain();
  const poor = Wallet.createRandom();
  const { logger, records } = memoryLogger();
  const agent = new ChainAgent(agentOptions(chain.rpcUrl, poor.privateKey, { logger }));
  await agent.start();
  assert.equal(agent.status().state, "offline");
  // before: "chain unreachable: offline mode" with the RPC's 'Insufficient funds' as the error
  const said = records.find((r) => r.level === "warn" && /cannot pay for gas/.test(r.msg));
  assert.ok(said, JSON.stringify(records.map((r) => r.msg)));
  assert.equal(said.address, poor.address);
  assert.ok(!records.some((r) => /chain unreachable/.test(r.msg)));
  assert.match(agent.status().lastError!, /cannot pay for gas/);
  await waitFor(() => records.some((r) => /still cannot pay for gas/.test(r.msg)), { what: "a retry" });
  await chain.rpc("anvil_setBalance", [poor.address, "0x" + PLM.toString(16)]);
  await waitFor(() => agent.status().state === "online", { what: "online once funded" });
  await agent.stop();
});

Deno.test("wrong chain id is a config error naming both ids", async () => {
  await using chain = await startTestChain({ chainId: 419561 });
  const agent = new ChainAgent(agentOptions(chain.rpcUrl, chain.fundedKeys[1]));
  await assert.rejects(agent.start(), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.code, "CHAIN_ID_MISMATCH");
    assert.match(err.message, /419561/);
    assert.match(err.message, /41956\b/);
    assert.equal(err.exitCode, 2);
    return true;
  });
  await agent.stop();
});

Deno.test("a plain EVM without agent_* methods: registers via a simulated 0x21 once, then says already registered", async () => {
  await using chain = await startTestChain({ agentMethods: false });
  const key = chain.fundedKeys[5];
  const address = new Wallet(key).address;
  for (let run = 0; run < 2; run++) {
    const { logger, records } = memoryLogger();
    const agent = new ChainAgent(agentOptions(chain.rpcUrl, key, { logger }));
    await agent.start();
    const s = agent.status();
    assert.equal(s.registered, true);
    assert.equal(s.agentMethods, false);
    assert.equal(s.registrationSource, run === 0 ? "transaction" : "simulation");
    assert.ok(records.some((r) => /no agent_\* methods/.test(r.msg)));
    await agent.stop();
  }
  assert.equal((await chain.txsTo(AGENT_REGISTER_ADDRESS, address)).length, 1);
  // with an AgentRegistry configured, it is asked instead
  const agent = new ChainAgent(agentOptions(chain.rpcUrl, key, { agentRegistry: AGENT_REGISTRY }));
  await agent.start();
  assert.equal(agent.status().registrationSource, "agentRegistry");
  await agent.stop();
});

Deno.test("a refused registration is reported with its reason and not retried; heartbeats refusals do not storm", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[6];
  const address = new Wallet(key).address;
  const { logger, records } = memoryLogger();
  const tooMany = Array.from({ length: 65 }, (_, i) => `cap-${i}`);
  const agent = new ChainAgent(
    agentOptions(chain.rpcUrl, key, { logger, capabilities: tooMany, heartbeatIntervalMs: 100 }),
  );
  await agent.start();
  assert.equal(agent.status().registered, false);
  assert.match(agent.status().registrationError!, /too many capabilities/);
  await waitFor(() => agent.status().heartbeatFailures >= 5, { what: "5 refused heartbeats" });
  await agent.stop();
  assert.equal(
    (await chain.txsTo(AGENT_REGISTER_ADDRESS, address)).length,
    0,
    "a would-revert tx is not sent",
  );
  assert.equal((await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address)).length, 0);
  const refusedWarnings = records.filter((r) => r.level === "warn" && /heartbeat refused/.test(r.msg));
  assert.equal(refusedWarnings.length, 1, "one warning per distinct reason");
  assert.match(String(refusedWarnings[0].error), /not an agent/);
  assert.equal(records.filter((r) => /registration failed/.test(r.msg)).length, 1);
});

Deno.test("VERIFY_ON_CHAIN sends the 160-byte 0x20 attestation", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[7];
  const address = new Wallet(key).address;
  const agent = new ChainAgent(agentOptions(chain.rpcUrl, key, { verifyOnChain: true }));
  await agent.start();
  await agent.verifyInference({
    modelHash: modelHash(MODEL),
    inputHash: "0x" + "11".repeat(32),
    outputHash: "0x" + "22".repeat(32),
    tokenCount: 7,
  });
  await agent.stop();
  const txs = await chain.txsTo(PRECOMPILE_VERIFY, address);
  assert.equal(txs.length, 1);
  assert.equal(txs[0].status, 1);
  const out = await chain.rpc("eth_call", [{
    to: PRECOMPILE_VERIFY,
    data: verifyIface.encodeFunctionData("tokensVerified", [address]),
  }, "latest"]) as string;
  assert.equal(BigInt(out), 7n);
});

Deno.test("chain agent: start gives up when its signal aborts while the registration waits for its receipt", async () => {
  await using chain = await startTestChain();
  const agent = new ChainAgent(
    agentOptions(chain.rpcUrl, chain.fundedKeys[2], { receiptTimeoutMs: 600_000 }),
  );
  await chain.rpc("evm_setAutomine", [false]);
  const stop = new AbortController();
  const started = agent.start({ signal: stop.signal }).then(() => "started", (e) => e);
  await waitFor(async () => {
    const content = await chain.rpc("txpool_content") as { pending: Record<string, unknown> };
    return content.pending[agent.queue.address.toLowerCase()];
  }, { what: "the registration in the pool" });
  stop.abort(new Error("node stopping"));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((r) => timer = setTimeout(() => r("still starting"), 10_000));
  const outcome = await Promise.race([started, late]);
  clearTimeout(timer);
  assert.ok(outcome instanceof Error, String(outcome));
  assert.equal(outcome.message, "node stopping");
  assert.equal(agent.status().state, "stopped");
  await agent.stop();
});
