/**
 * The test chain, the agent_* proxy and the Oracle stub behave like the real network parts
 * (so that the node's tests against them mean something).
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { rpcCall, startTestChain } from "./helpers/anvil.ts";
import { startOracleStub } from "./helpers/oracle_stub.ts";

async function signedReport(
  wallet: Wallet,
  tokens: number,
  timestamp: number,
  extra: Record<string, unknown> = {},
) {
  const message = JSON.stringify({ agent: wallet.address, processed_tokens: tokens, timestamp });
  return {
    wallet: wallet.address,
    tokensProcessed: tokens,
    avgLatencyMs: 1.5,
    uptimeSeconds: 10,
    requestCount: 2,
    timestamp,
    signature: await wallet.signMessage(message),
    ...extra,
  };
}

async function post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${url}/api/v1/metrics/report`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("test chain: stand-ins, agent_* proxy and block scan", async () => {
  await using chain = await startTestChain();
  assert.equal(chain.fundedKeys.length, 10);
  const agent = new Wallet(chain.fundedKeys[3]);
  assert.equal(await rpcCall(chain.rpcUrl, "agent_isAgentAccount", [agent.address, "latest"]), false);
  await assert.rejects(rpcCall(chain.rpcUrl, "agent_isAgentAccount", [agent.address]), /required argument 1/);
  await chain.registerAgent(chain.fundedKeys[3], "bloom-560m-test");
  assert.equal(await rpcCall(chain.rpcUrl, "agent_isAgentAccount", [agent.address, "latest"]), true);
  const meta = await rpcCall(chain.rpcUrl, "agent_getAgentMeta", [agent.address, "latest"]) as {
    name: string;
  };
  assert.equal(meta.name, "bloom-560m-test");
  assert.deepEqual(await chain.registeredAgents(), [agent.address]);
  // registering twice reverts
  await assert.rejects(chain.registerAgent(chain.fundedKeys[3]), /reverted/);
  const txs = await chain.txsTo("0x0000000000000000000000000000000000000021", agent.address);
  assert.deepEqual(txs.map((t) => t.status), [1, 0]);
  // the anvil URL itself has no agent_* methods, and the proxy can be switched to a plain EVM
  await assert.rejects(rpcCall(chain.anvilUrl, "agent_isAgentAccount", [agent.address, "latest"]));
  chain.proxy.setAgentMethods(false);
  await assert.rejects(
    rpcCall(chain.rpcUrl, "agent_isAgentAccount", [agent.address, "latest"]),
    /does not exist/,
  );
  await chain.setPending(agent.address, 123n);
  assert.equal(await chain.pending(agent.address), 123n);
});

Deno.test("oracle stub enforces the Oracle's checks in order", async () => {
  await using chain = await startTestChain();
  await using oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  const agent = new Wallet(chain.fundedKeys[1]);
  const stranger = new Wallet(chain.fundedKeys[2]);
  await chain.registerAgent(chain.fundedKeys[1]);
  const now = Math.floor(Date.now() / 1000);

  let r = await post(oracle.url, { ...(await signedReport(agent, 5, now)), agentAddress: agent.address });
  assert.equal(r.status, 400);
  assert.match(String(r.body.message), /agentAddress should not exist/);
  r = await post(oracle.url, await signedReport(agent, 5, now, { proofs: [{ proofHash: "0x" }] }));
  assert.equal(r.status, 400);
  r = await post(oracle.url, { ...(await signedReport(agent, 5, now)), tokensProcessed: 6 }); // altered after signing
  assert.equal(r.status, 401);
  r = await post(oracle.url, await signedReport(agent, 5, now - 61));
  assert.equal(r.status, 401);
  const noPrefix = await signedReport(agent, 5, now);
  r = await post(oracle.url, { ...noPrefix, signature: noPrefix.signature.slice(2) });
  assert.equal(r.status, 401);
  r = await post(oracle.url, await signedReport(stranger, 5, now));
  assert.equal(r.status, 400);
  assert.match(String(r.body.message), /not registered/);
  r = await post(oracle.url, await signedReport(agent, 5, now));
  assert.equal(r.status, 201);
  assert.equal(r.body.success, true);
  r = await post(oracle.url, await signedReport(agent, 6, now));
  assert.equal(r.status, 400);
  assert.match(String(r.body.message), /Replay/);
  assert.equal(oracle.accepted.length, 1);
  assert.equal(oracle.accepted[0].tokensProcessed, 5);

  const view = await fetch(`${oracle.url}/api/v1/metrics/agents/${agent.address}`);
  assert.equal(view.status, 200);
  assert.equal((await view.json()).tokensProcessed, 5);

  // skewed clock: the Date header shows the stub's time
  oracle.setSkew(61);
  r = await post(oracle.url, await signedReport(agent, 7, Math.floor(Date.now() / 1000)));
  assert.equal(r.status, 401);

  // stop and restart on the same URL
  await oracle.stop();
  await assert.rejects(fetch(`${oracle.url}/api/v1/metrics/agents/${agent.address}`));
  await oracle.restart();
  assert.equal(
    (await fetch(`${oracle.url}/api/v1/metrics/agents/${agent.address}`).then((x) => x.json()))
      .tokensProcessed,
    5,
  );
});
