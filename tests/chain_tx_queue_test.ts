/**
 * The transaction queue against a real chain with mining paused and resumed (issue 21 item 11):
 * an "already known" reply means the tx is pending (not a stale nonce: nothing is signed again at
 * the next nonce), an unclear send is re-checked by hash before anything is re-sent, a receipt
 * timeout does not send registration a second time, and a stuck tx is replaced with a fee bump
 * after a bound instead of blocking the queue.
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { AGENT_REGISTER_ADDRESS } from "../lib/chain/agent_registration.ts";
import { ChainAgent, type ChainAgentOptions } from "../lib/chain/chain_agent.ts";
import { AGENT_HEARTBEAT_ADDRESS, HEARTBEAT_GAS } from "../lib/chain/heartbeat.ts";
import { ChainProvider } from "../lib/chain/provider.ts";
import { TxQueue, type TxQueueOptions } from "../lib/chain/tx_queue.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import { startTestChain, type TestChain } from "./helpers/anvil.ts";
import { waitFor } from "./helpers/wait_for.ts";

const HEARTBEAT = { to: AGENT_HEARTBEAT_ADDRESS, data: "0x", gasLimit: HEARTBEAT_GAS, label: "heartbeat" };

interface PoolTx {
  hash: string;
  nonce: string;
  gasPrice: string;
}

/** The wallet's pending pool transactions, by nonce. */
async function pool(chain: TestChain, address: string): Promise<Record<string, PoolTx>> {
  const content = await chain.rpc("txpool_content") as { pending: Record<string, Record<string, PoolTx>> };
  return content.pending[address.toLowerCase()] ?? {};
}

/** The wallet's one pending pool transaction (undefined while there is none). */
async function pooled(chain: TestChain, address: string): Promise<PoolTx | undefined> {
  return Object.values(await pool(chain, address))[0];
}

/**
 * A queue for `key`, registered as an agent first (heartbeats of others revert) unless `registered`
 * says it is already (a second process of the same wallet).
 */
async function queueOn(
  chain: TestChain,
  key: string,
  extra: Partial<TxQueueOptions> = {},
  { registered = false }: { registered?: boolean } = {},
) {
  if (!registered) await chain.registerAgent(key);
  const provider = new ChainProvider({ rpcUrl: chain.rpcUrl, chainId: chain.chainId, timeoutMs: 5000 });
  const { logger, records } = memoryLogger();
  const queue = new TxQueue({
    provider,
    wallet: new Wallet(key),
    logger,
    pollMs: 20,
    receiptTimeoutMs: 60_000,
    ...extra,
  });
  return { provider, queue, records, address: new Wallet(key).address };
}

/** A chain agent for `key` built as the node builds it (hourly loops), with `extra` settings. */
function agentFor(chain: TestChain, key: string, extra: Partial<ChainAgentOptions> = {}): ChainAgent {
  return new ChainAgent({
    wallet: new Wallet(key),
    rpcUrl: chain.rpcUrl,
    chainId: chain.chainId,
    model: "bigscience/bloom-560m",
    claimThresholdWei: 10n ** 18n,
    reportInterval: 60,
    heartbeatIntervalMs: 3_600_000,
    claimIntervalMs: 3_600_000,
    ...extra,
  });
}

Deno.test("tx queue: 'already known' is a pending tx, not a stale nonce: nothing is signed again", async () => {
  await using chain = await startTestChain();
  const { provider, queue, address } = await queueOn(chain, chain.fundedKeys[1]);
  await chain.rpc("evm_setAutomine", [false]);
  let sends = 0;
  // The node took the tx, but the reply says "already known" (a retried request, a load balancer).
  chain.proxy.intercept("eth_sendRawTransaction", async (req, forward) => {
    sends++;
    await forward();
    return { jsonrpc: "2.0", id: req.id, error: { code: -32000, message: "already known" } };
  });
  try {
    const sent = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    await waitFor(() => pooled(chain, address), { what: "the tx in the pool" });
    await chain.rpc("evm_mine");
    const r = await sent;
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, 1);
    assert.equal(r.nonce, 1, "the nonce after the registration");
    assert.equal(sends, 1, "signed and sent once");
    const mined = await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address);
    assert.equal(mined.length, 1);
    assert.equal(mined[0].hash, r.hash);
    assert.deepEqual(await pool(chain, address), {});
  } finally {
    provider.destroy();
  }
});

Deno.test("tx queue: a send whose reply was lost is re-checked by hash and not sent again", async () => {
  await using chain = await startTestChain();
  const { provider, queue, address } = await queueOn(chain, chain.fundedKeys[2]);
  await chain.rpc("evm_setAutomine", [false]);
  let sends = 0;
  chain.proxy.intercept("eth_sendRawTransaction", async (_req, forward) => {
    sends++;
    await forward();
    return new Response("bad gateway", { status: 502 }); // the tx got through, the reply did not
  });
  try {
    const sent = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    await waitFor(() => pooled(chain, address), { what: "the tx in the pool" });
    await chain.rpc("evm_mine");
    const r = await sent;
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, 1);
    assert.equal(sends, 1);
    assert.equal((await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address)).length, 1);
  } finally {
    provider.destroy();
  }
});

Deno.test("chain agent: a registration whose receipt timed out is awaited by hash, never sent twice", async () => {
  await using chain = await startTestChain();
  await chain.rpc("evm_setAutomine", [false]);
  const key = chain.fundedKeys[3];
  const address = new Wallet(key).address;
  const { logger, records } = memoryLogger();
  const agent = agentFor(chain, key, {
    receiptPollMs: 20,
    receiptTimeoutMs: 300,
    rpcTimeoutMs: 3000,
    retryBackoff: { initialMs: 50, maxMs: 100 },
    logger,
  });
  try {
    await agent.start();
    assert.equal(agent.status().state, "offline", "the receipt timed out: retried in the background");
    await waitFor(() => records.filter((r) => /still unreachable/.test(r.msg)).length >= 3, {
      what: "three retries while the chain mines nothing",
    });
    const waiting = await pool(chain, address);
    assert.deepEqual(Object.keys(waiting), ["0"], "one registration in the pool, no second one");
    await chain.rpc("evm_setAutomine", [true]);
    await chain.rpc("evm_mine");
    await waitFor(() => agent.status().state === "online", { what: "online once mined" });
    assert.equal(agent.status().registered, true, agent.status().registrationError);
    const registrations = await chain.txsTo(AGENT_REGISTER_ADDRESS, address);
    assert.equal(registrations.length, 1);
    assert.equal(registrations[0].status, 1);
    // Mined while a retry waited on it (the tx's hash), or before a retry asked the chain (none).
    const source = agent.status().registrationSource;
    if (source === "transaction") assert.equal(agent.status().registrationTx, registrations[0].hash);
    else assert.equal(source, "agent_isAgentAccount");
  } finally {
    await agent.stop();
  }
});

Deno.test("tx queue: a stuck tx (fee below the base fee) is replaced with a fee bump; the queue goes on", async () => {
  await using chain = await startTestChain();
  const { provider, queue, address, records } = await queueOn(chain, chain.fundedKeys[4], {
    stuckAfterMs: 200,
  });
  await chain.rpc("evm_setAutomine", [false]);
  try {
    const first = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    const second = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    const original = await waitFor(() => pooled(chain, address), { what: "the tx in the pool" });
    // Fees jump: the next block's base fee is far above what the tx offers, so it is left out.
    const price = BigInt(original.gasPrice);
    await chain.rpc("anvil_setNextBlockBaseFeePerGas", ["0x" + (price * 20n).toString(16)]);
    await chain.rpc("evm_mine");
    // anvil drops it from the pool then (geth would keep it waiting): either way it is not mined.
    assert.equal(await chain.rpc("eth_getTransactionReceipt", [original.hash]), null);
    // After the bound the queue offers the market price again at the same nonce.
    await waitFor(async () => {
      const market = BigInt(await chain.rpc("eth_gasPrice") as string);
      const tx = await pooled(chain, address);
      return tx && tx.nonce === original.nonce && BigInt(tx.gasPrice) >= market;
    }, { what: "a replacement at the market price" });
    await chain.rpc("evm_setAutomine", [true]);
    await chain.rpc("evm_mine");
    const r1 = await first;
    assert.ok(!(r1 instanceof Error), String(r1));
    assert.equal(r1.status, 1);
    assert.equal(r1.nonce, 1);
    assert.notEqual(r1.hash, original.hash, "the replacement was mined");
    const r2 = await second;
    assert.ok(!(r2 instanceof Error), String(r2));
    assert.equal(r2.nonce, 2, "the queue went on after the stuck tx");
    const mined = await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address);
    assert.deepEqual(mined.map((t) => t.nonce), [1, 2]);
    assert.ok(records.some((r) => /replac/.test(r.msg) && r.nonce === 1), "the replacement is logged");
  } finally {
    provider.destroy();
  }
});

Deno.test("tx queue: settings a chain agent leaves unset keep their defaults (receipts polled each second)", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[1];
  await chain.registerAgent(key);
  // built as the node builds it: its optional settings passed through as undefined
  const agent = agentFor(chain, key, {
    receiptPollMs: undefined,
    receiptTimeoutMs: undefined,
    txStuckAfterMs: undefined,
  });
  await chain.rpc("evm_setAutomine", [false]);
  let polls = 0;
  chain.proxy.intercept("eth_getTransactionReceipt", (_req, forward) => {
    polls++;
    return forward();
  });
  const sent = agent.queue.send(HEARTBEAT);
  await waitFor(() => pooled(chain, agent.queue.address), { what: "the tx in the pool" });
  const before = polls;
  await new Promise((r) => setTimeout(r, 2500));
  // the default period (1 s) gives 2 or 3; an undefined period polled hundreds of times
  assert.ok(polls - before <= 6, `${polls - before} receipt polls in 2.5 s`);
  await chain.rpc("evm_mine");
  const r = await sent;
  assert.equal(r.status, 1);
  await agent.stop();
});

Deno.test("tx queue: a tx mined after its send gave up is reported by recheck (a claim's status)", async () => {
  await using chain = await startTestChain();
  const late: Array<{ label: string; hash: string; status: number }> = [];
  const { provider, queue, address } = await queueOn(chain, chain.fundedKeys[1], {
    receiptTimeoutMs: 300,
    onMinedLate: (request, receipt) =>
      late.push({ label: request.label, hash: receipt.hash, status: receipt.status }),
  });
  try {
    await chain.rpc("evm_setAutomine", [false]);
    const err = await queue.send(HEARTBEAT).then(() => undefined, (e) => e);
    assert.equal(err?.code, "RECEIPT_TIMEOUT", String(err));
    const pending = await pooled(chain, address);
    await queue.recheck();
    assert.deepEqual(late, [], "not mined yet: nothing reported");
    await chain.rpc("evm_mine");
    await queue.recheck();
    // before: nothing learned of it until another tx was sent
    assert.deepEqual(late, [{ label: "heartbeat", hash: pending!.hash, status: 1 }]);
    await queue.recheck();
    assert.equal(late.length, 1, "reported once");
  } finally {
    provider.destroy();
  }
});

Deno.test("tx queue: an RPC's gas price above MAX_GAS_PRICE_WEI sends nothing; offers and bumps stop at it", async () => {
  await using chain = await startTestChain();
  const cap = 50n * 10n ** 9n;
  const { provider, queue, address, records } = await queueOn(chain, chain.fundedKeys[2], {
    maxGasPriceWei: cap,
    stuckAfterMs: 200,
  });
  try {
    // a hostile RPC: 10 000 gwei
    let reported = 10_000n * 10n ** 9n;
    chain.proxy.intercept("eth_gasPrice", (req) => {
      return Promise.resolve({ jsonrpc: "2.0", id: req.id, result: "0x" + reported.toString(16) });
    });
    const refused = await queue.send(HEARTBEAT).then(() => undefined, (e) => e);
    assert.equal(refused?.code, "GAS_PRICE_TOO_HIGH", String(refused));
    assert.match(refused.message, /10000000000000 wei is above MAX_GAS_PRICE_WEI 50000000000/);
    assert.match(refused.hint, /raise MAX_GAS_PRICE_WEI/);
    assert.deepEqual(await pool(chain, address), {}, "nothing was sent");
    assert.equal(queue.sent, 0);

    // just under the ceiling: the offer (a fifth above the market) is cut to the ceiling
    reported = cap - 1n;
    await chain.rpc("evm_setAutomine", [false]);
    const sent = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    const first = await waitFor(() => pooled(chain, address), { what: "the tx in the pool" });
    assert.equal(BigInt(first.gasPrice), cap);
    // stuck: bumps would go a quarter higher each time; they stay at the ceiling (the same tx again)
    await waitFor(() => records.some((r) => /broadcast a stuck transaction again/.test(r.msg)), {
      what: "a stuck tx broadcast again at its fee",
    });
    const still = await pooled(chain, address);
    assert.equal(still?.hash, first.hash, "not replaced above the ceiling");
    assert.ok(!records.some((r) => /replaced a stuck transaction/.test(r.msg)), "no fee bump");
    await chain.rpc("evm_setAutomine", [true]);
    await chain.rpc("evm_mine");
    const r = await sent;
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.status, 1);
    assert.equal(r.hash, first.hash);
  } finally {
    chain.proxy.intercept("eth_gasPrice", undefined);
    provider.destroy();
  }
});

Deno.test("tx queue: a send whose reply and lookup both failed is kept as sent: its retry signs nothing new", async () => {
  // the reply lost to a 502, or answered with geth's own "request timed out" (a JSON-RPC error
  // after which the send may still complete): neither is a refusal
  const replies = [
    () => new Response("bad gateway", { status: 502 }),
    (id: unknown) => ({ jsonrpc: "2.0", id, error: { code: -32002, message: "request timed out" } }),
  ];
  for (const [k, reply] of replies.entries()) {
    await using chain = await startTestChain();
    const { provider, queue, address } = await queueOn(chain, chain.fundedKeys[1]);
    await chain.rpc("evm_setAutomine", [false]);
    let sends = 0, lookups = 0;
    chain.proxy.intercept("eth_sendRawTransaction", async (req, forward) => {
      sends++;
      await forward(); // the tx got through, the reply did not
      return reply(req.id);
    });
    chain.proxy.intercept("eth_getTransactionByHash", async (_req, forward) => {
      if (++lookups === 1) return new Response("bad gateway", { status: 502 }); // nor the lookup's
      return await forward();
    });
    try {
      const failed = await queue.send(HEARTBEAT).then(() => undefined, (e) => e);
      assert.ok(failed instanceof Error, "the send's outcome is unknown: it fails");
      // the heartbeat loop's retry: before, a second heartbeat signed at the next nonce
      const retry = queue.send(HEARTBEAT).then((r) => r, (e) => e);
      await waitFor(() => pooled(chain, address), { what: "the tx in the pool" });
      await chain.rpc("evm_mine");
      const r = await retry;
      assert.ok(!(r instanceof Error), `reply ${k}: ${r}`);
      assert.equal(r.status, 1);
      assert.equal(sends, 1, `reply ${k}`);
      assert.deepEqual((await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address)).map((t) => t.nonce), [1]);
    } finally {
      chain.proxy.intercept("eth_sendRawTransaction", undefined);
      chain.proxy.intercept("eth_getTransactionByHash", undefined);
      provider.destroy();
    }
  }
});

Deno.test("tx queue: a fee-bumped replacement whose reply was lost is found by its hash once mined", async () => {
  await using chain = await startTestChain();
  const { provider, queue, address } = await queueOn(chain, chain.fundedKeys[2], { stuckAfterMs: 200 });
  await chain.rpc("evm_setAutomine", [false]);
  let sends = 0;
  chain.proxy.intercept("eth_sendRawTransaction", async (_req, forward) => {
    const reply = await forward();
    // the replacement gets through; its reply does not
    return ++sends === 2 ? new Response("bad gateway", { status: 502 }) : reply;
  });
  try {
    const sent = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    const original = await waitFor(() => pooled(chain, address), { what: "the tx in the pool" });
    await chain.rpc("anvil_setNextBlockBaseFeePerGas", [
      "0x" + (BigInt(original.gasPrice) * 20n).toString(16),
    ]);
    await chain.rpc("evm_mine"); // left out (and dropped by anvil): stuck
    const replacement = await waitFor(async () => {
      const tx = await pooled(chain, address);
      return tx && tx.hash !== original.hash ? tx : undefined;
    }, { what: "the replacement in the pool" });
    await chain.rpc("evm_setAutomine", [true]);
    await chain.rpc("evm_mine");
    const r = await sent;
    // before: TX_DISPLACED ("another transaction of this wallet took the nonce"), its own
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.hash, replacement.hash);
    assert.equal((await chain.txsTo(AGENT_HEARTBEAT_ADDRESS, address)).length, 1);
  } finally {
    chain.proxy.intercept("eth_sendRawTransaction", undefined);
    provider.destroy();
  }
});

Deno.test("tx queue: a nonce gap left by an earlier process's dropped tx is filled; the queue goes on", async () => {
  await using chain = await startTestChain();
  const key = chain.fundedKeys[3];
  const earlier = await queueOn(chain, key);
  await chain.rpc("evm_setAutomine", [false]);
  const lost = earlier.queue.send(HEARTBEAT).then((r) => r, (e) => e);
  const first = await waitFor(() => pooled(chain, earlier.address), { what: "the earlier tx in the pool" });
  earlier.provider.destroy(); // that process stops while its tx is pending
  await lost;
  const { provider, queue, records } = await queueOn(chain, key, { stuckAfterMs: 200 }, { registered: true });
  try {
    const sent = queue.send(HEARTBEAT).then((r) => r, (e) => e);
    await waitFor(async () => Object.keys(await pool(chain, earlier.address)).length === 2, {
      what: "the new process's tx at the next nonce",
    });
    // the earlier tx leaves the pool (evicted, the RPC node restarted): nonce 1 is now a gap
    await chain.rpc("anvil_dropTransaction", [first.hash]);
    await chain.rpc("evm_setAutomine", [true]);
    await chain.rpc("evm_mine");
    const r = await sent;
    // before: "not mined after 60000 ms (nonce 2)", and so every later tx of the wallet
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.nonce, 2);
    assert.ok(records.some((x) => /filled with a 0-value transfer/.test(x.msg) && x.nonce === 1));
  } finally {
    provider.destroy();
  }
});

Deno.test("tx queue: a send the node refused is not kept as sent, even when the lookup after it failed", async () => {
  await using chain = await startTestChain();
  const { provider, queue } = await queueOn(chain, chain.fundedKeys[4]);
  let lookups = 0;
  chain.proxy.intercept(
    "eth_sendRawTransaction",
    (req) =>
      Promise.resolve({
        jsonrpc: "2.0",
        id: req.id,
        error: { code: -32000, message: "exceeds block gas limit" },
      }),
  );
  chain.proxy.intercept(
    "eth_getTransactionByHash",
    async (_req, forward) =>
      ++lookups === 1 ? new Response("too many requests", { status: 429 }) : await forward(),
  );
  try {
    const refused = await queue.send(HEARTBEAT).then(() => undefined, (e) => e);
    assert.match(String(refused?.message), /exceeds block gas limit/);
    chain.proxy.intercept("eth_sendRawTransaction", undefined);
    // a review's probe of the first version of "kept as sent": every later send waited for it
    const r = await queue.send(HEARTBEAT).then((x) => x, (e) => e);
    assert.ok(!(r instanceof Error), String(r));
    assert.equal(r.nonce, 1);
  } finally {
    chain.proxy.intercept("eth_sendRawTransaction", undefined);
    chain.proxy.intercept("eth_getTransactionByHash", undefined);
    provider.destroy();
  }
});
