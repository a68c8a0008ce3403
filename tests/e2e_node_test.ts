/**
 * The whole network on one machine (issue 7's acceptance): the local hub serving a tiny BLOOM
 * checkpoint, anvil + the agent_* proxy with the precompile stand-ins and RewardPool, the Oracle
 * stub, and `plumise serve` processes run through main.ts with the binary's permission flags.
 */
import assert from "node:assert/strict";
import { createBlockRuntime, createClientHead, loadTokenizer } from "../lib/runtime/mod.ts";
import { generateText } from "../lib/swarm/client/generate_text.ts";
import { startTestChain, type TestChain } from "./helpers/anvil.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { HubServer } from "./helpers/hub_server.ts";
import { type OracleStub, startOracleStub } from "./helpers/oracle_stub.ts";
import { waitFor } from "./helpers/wait_for.ts";
import { GatewayRelayStub } from "./helpers/gateway_relay_stub.ts";
import { NodeProcess } from "./helpers/serve_process.ts";

const MODEL = "test-org/tiny-bloom";
const NUM_LAYERS = 6;

interface Network {
  chain: TestChain;
  oracle: OracleStub;
  hub: HubServer;
  root: string;
  env(key: string, name: string, extra?: Record<string, string>): Promise<Record<string, string>>;
}

async function network(): Promise<Network & AsyncDisposable> {
  const root = await Deno.makeTempDir({ prefix: "plumise-e2e-" });
  const ckpt = await makeBloomCheckpoint({ dir: `${root}/ckpt`, numLayers: NUM_LAYERS, shards: 3 });
  const hub = await HubServer.start({ repos: { [MODEL]: ckpt.dir } });
  const chain = await startTestChain();
  const oracle = await startOracleStub({ rpcUrl: chain.rpcUrl });
  return {
    chain,
    oracle,
    hub,
    root,
    async env(key, name, extra = {}) {
      const dir = `${root}/${name}`;
      await Deno.mkdir(dir, { recursive: true });
      return {
        PLUMISE_PRIVATE_KEY: key,
        PLUMISE_RPC_URL: chain.rpcUrl,
        PLUMISE_CHAIN_ID: String(chain.chainId),
        ORACLE_API_URL: oracle.url,
        MODEL_NAME: MODEL,
        NUM_BLOCKS: "2",
        HF_ENDPOINT: hub.url,
        HF_HOME: `${root}/hf`,
        PLUMISE_DATA_DIR: dir,
        API_HOST: "127.0.0.1",
        API_PORT: "0",
        PETALS_HOST: "127.0.0.1",
        PETALS_PORT: "0",
        DIRECT_PORT: "0",
        REPORT_INTERVAL: "10",
        LOG_JSON: "true",
        ...extra,
      };
    },
    async [Symbol.asyncDispose]() {
      await oracle.stop().catch(() => {});
      await chain.stop().catch(() => {});
      await hub[Symbol.asyncDispose]().catch(() => {});
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/** The single-process greedy run: all blocks in one runtime, the same head, tokenizer and weights. */
async function referenceGreedy(
  source: { model: string; hfEndpoint: string; hfHome: string },
  prompt: string,
  n: number,
) {
  const blocks = createBlockRuntime({
    ...source,
    start: 0,
    end: NUM_LAYERS,
    weights: "int8",
    cacheTokens: 4096,
  });
  const head = createClientHead({ ...source, weights: "int8" }); // the nodes' default, like their blocks
  await blocks.start();
  await head.start();
  try {
    const tokenizer = await loadTokenizer(source);
    const session = await blocks.openSession({ start: 0, end: NUM_LAYERS, maxLength: 256, batch: 1 });
    const gen = generateText({ head, tokenizer, session }, prompt, {
      maxNewTokens: n,
      temperature: 0,
      repetitionPenalty: 1,
    });
    return (await gen.complete()).text;
  } finally {
    await head.stop();
    await blocks.stop();
  }
}

/** `plumise_tokens_processed_total` of a node (0 before its first step). */
async function tokensOf(api: string): Promise<number> {
  const text = await (await fetch(`${api}/metrics`)).text();
  const m = /^plumise_tokens_processed_total (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/**
 * The count once it stops moving: a runtime reports its batched steps' positions at most 200 ms
 * apart, so a count read just after a generation ends may still lack its last steps.
 */
async function settledTokens(api: string): Promise<number> {
  let a = await tokensOf(api);
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const b = await tokensOf(api);
    if (b === a) return b;
    a = b;
  }
  throw new Error(`the token count of ${api} never settled (last ${a})`);
}

async function post(url: string, body: unknown): Promise<Response> {
  return await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

function sseData(text: string): string[] {
  return text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));
}

Deno.test({
  name: "e2e: three serve processes cover the model; API, chain, Oracle, failover and SIGTERM behave",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using net = await network();
    const keys = await Promise.all([0, 1, 2, 3].map(() => net.chain.newFundedKey()));
    // node 1 also signs in to the gateway's WebSocket relay: what it serves there counts like the API
    const gateway = new GatewayRelayStub();
    await using _gateway = { [Symbol.asyncDispose]: () => gateway.stop() };
    await using n1 = new NodeProcess(
      "node1",
      await net.env(keys[0], "n1", { GATEWAY_RELAY_URL: gateway.url }),
    );
    const o1 = await n1.online();
    const peers = o1.addrs.join(",");
    // one after the other: two nodes that choose their spans at the same instant see the same table
    // and may pick the same span (rebalancing spreads them later; that is swarm_rebalance_test's part)
    await using n2 = new NodeProcess("node2", await net.env(keys[1], "n2", { PETALS_INITIAL_PEERS: peers }));
    const o2 = await n2.online();
    await using n3 = new NodeProcess("node3", await net.env(keys[2], "n3", { PETALS_INITIAL_PEERS: peers }));
    const o3 = await n3.online();
    const spans = [o1.span, o2.span, o3.span].sort();
    assert.deepEqual(spans, ["0:2", "2:4", "4:6"], "disjoint spans chosen by the nodes themselves");

    // /health of each: ok, its span, the swarm covers the model.
    for (const o of [o1, o2, o3]) {
      const h = await waitFor(async () => {
        const j = await (await fetch(`${o.api}/health`)).json();
        return j.swarm?.complete ? j : undefined;
      }, { what: "a complete swarm in /health" });
      assert.equal(h.status, "ok");
      assert.equal(h.mode, "pipeline");
      assert.equal(h.model, MODEL);
      assert.equal(`${h.span.start}:${h.span.end}`, o.span);
    }

    // generate on node 1: non-stream and stream agree. (The one-process references first: the three
    // requests then run back to back, within the seconds a finished generation's session is kept.)
    const source = { model: MODEL, hfEndpoint: net.hub.url, hfHome: `${net.root}/hf-ref` };
    const refHello = await referenceGreedy(source, "Hello world", 12);
    const refHi = await referenceGreedy(source, "Hi", 12);
    const params = { max_new_tokens: 12, do_sample: false, repetition_penalty: 1 };
    const g = await (await post(`${o1.api}/api/v1/generate`, { inputs: "Hello world", parameters: params }))
      .json();
    assert.equal(g.num_tokens > 0, true);
    assert.equal(g.generated_text, refHello, "same text as one process");
    const s = await post(`${o1.api}/api/v1/generate`, {
      inputs: "Hello world",
      parameters: params,
      stream: true,
    });
    const events = sseData(await s.text());
    assert.equal(events.at(-1), "[DONE]");
    assert.equal(events.slice(0, -1).map((e) => JSON.parse(e).token).join(""), g.generated_text);
    // those two ran one after the other: the second reused the first's sessions (rolled back to 0);
    // so does one with another, shorter prompt, and it still gives the one-process text
    const other = await (await post(`${o1.api}/api/v1/generate`, { inputs: "Hi", parameters: params }))
      .json();
    assert.equal(other.generated_text, refHi, "a reused session's text");
    const m = await (await fetch(`${o1.api}/metrics`)).text();
    assert.match(m, /plumise_generation_sessions_total\{session="opened"\} 1\n/, m);
    assert.match(m, /plumise_generation_sessions_total\{session="reused"\} 2\n/, m);

    // OpenAI shape, non-stream and stream.
    const chat = await (await post(`${o1.api}/v1/chat/completions`, {
      model: MODEL,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 6,
      temperature: 0,
    })).json();
    assert.equal(chat.object, "chat.completion");
    assert.equal(typeof chat.choices[0].message.content, "string");
    const chatStream = sseData(
      await (await post(`${o1.api}/v1/chat/completions`, {
        model: MODEL,
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 6,
        temperature: 0,
        stream: true,
      })).text(),
    );
    assert.equal(chatStream.at(-1), "[DONE]");
    const streamed = chatStream.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? "").join(
      "",
    );
    assert.equal(streamed, chat.choices[0].message.content);

    // The gateway's relay: a request it forwards to node 1 generates through the swarm, and node 1's
    // span computes its positions (counted in the Oracle reports checked below).
    const w1 = new (await import("ethers")).Wallet(keys[0]).address;
    await waitFor(() => gateway.agents.has(w1.toLowerCase()), {
      what: "node 1's sign-in at the gateway relay",
    });
    const beforeRelay = await tokensOf(o1.api);
    const relayed = await gateway.ask(
      w1,
      { messages: [{ role: "user", content: "Hi" }], maxTokens: 4 },
      60_000,
    );
    assert.equal(relayed.end?.type, "response", JSON.stringify(relayed.end));
    await waitFor(async () => (await tokensOf(o1.api)) > beforeRelay, {
      what: "node 1's span to count the relayed generation's positions",
    });

    // Bad requests get 4xx and the node keeps serving.
    const bad: Array<[string, BodyInit, number]> = [
      ["/api/v1/generate", "{oops", 400],
      ["/api/v1/generate", JSON.stringify({ inputs: "x", parameters: { max_new_tokens: 0 } }), 400],
      ["/api/v1/generate", JSON.stringify({ inputs: "x", parameters: { max_new_tokens: 1_000_000 } }), 400],
      ["/api/v1/generate", JSON.stringify({ inputs: "x", parameters: { temperature: -1 } }), 400],
      [
        "/v1/chat/completions",
        JSON.stringify({ model: "nope/nope", messages: [{ role: "user", content: "x" }] }),
        404,
      ],
      ["/api/v1/generate", JSON.stringify({ inputs: "x".repeat(10 * 1024 * 1024) }), 413],
    ];
    for (const [path, body, status] of bad) {
      const r = await fetch(`${o1.api}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      assert.equal(r.status, status, `${path} ${String(body).slice(0, 40)}`);
      const j = await r.json();
      assert.ok(JSON.stringify(j).length > 20, "a clear message");
    }
    assert.equal((await fetch(`${o1.api}/health`)).status, 200);

    // Contribution: every step passes each span once, so the three nodes computed the same positions;
    // the Oracle accepts reports from each carrying exactly what its span computed.
    // (read once each count has settled: the relayed generation's last steps may still be reporting)
    const computed = await Promise.all([o1, o2, o3].map((o) => settledTokens(o.api)));
    assert.ok(computed[0] > 0);
    assert.deepEqual(
      computed,
      [computed[0], computed[0], computed[0]],
      "each span computed every position once",
    );
    const wallets = await Promise.all(keys.map(async (k) => new (await import("ethers")).Wallet(k).address));
    await waitFor(
      () =>
        wallets.slice(0, 3).every((w, i) =>
          net.oracle.accepted.some((r) => r.wallet === w && r.tokensProcessed === computed[i])
        ),
      { what: "reports with each node's computed tokens", timeoutMs: 40_000 },
    );

    // Chain: each node registered exactly once; heartbeats arrived.
    for (const address of wallets.slice(0, 3)) {
      assert.equal(await net.chain.isRegistered(address), true);
      const regs = (await net.chain.txsTo("0x0000000000000000000000000000000000000021", address)).filter((
        t,
      ) => t.status === 1);
      assert.equal(regs.length, 1);
      await waitFor(async () => (await net.chain.heartbeats(address)).length >= 1, { what: "heartbeat" });
    }

    // Failover: a fourth node covers node 2's span; SIGKILL node 2 during a streamed generation.
    await using n4 = new NodeProcess(
      "node4",
      await net.env(keys[3], "n4", { PETALS_INITIAL_PEERS: peers, BLOCK_INDICES: o2.span }),
    );
    const o4api = (await n4.online()).api;
    const long = { max_new_tokens: 24, do_sample: false, repetition_penalty: 1 };
    const expected =
      (await (await post(`${o1.api}/api/v1/generate`, { inputs: "Failover", parameters: long }))
        .json()).generated_text;
    const before2 = await settledTokens(o2.api), before4 = await settledTokens(o4api);
    const streamResp = await post(`${o1.api}/api/v1/generate`, {
      inputs: "Failover",
      parameters: long,
      stream: true,
    });
    const reader = streamResp.body!.pipeThrough(new TextDecoderStream()).getReader();
    let got = "";
    let killed: string | undefined;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      got += value;
      if (!killed && got.includes('"token"')) {
        // kill whichever of the two servers of that span this generation is using
        let used2 = false, used4 = false;
        await waitFor(async () => {
          used2 = (await tokensOf(o2.api)) > before2;
          used4 = (await tokensOf(o4api)) > before4;
          return used2 || used4;
        }, { what: "one of the two servers of the span to count the generation's tokens" });
        (used2 ? n2 : n4).kill("SIGKILL");
        killed = used2 ? "node2" : "node4";
      }
    }
    assert.ok(killed);
    const evs = sseData(got);
    assert.equal(evs.at(-1), "[DONE]");
    assert.equal(evs.slice(0, -1).map((e) => JSON.parse(e).token).join(""), expected);

    // SIGTERM node 3: offline announced, final report, exit 0 within the grace period.
    const before = net.oracle.accepted.length;
    n3.kill("SIGTERM");
    const status = await n3.exited;
    assert.equal(status.code, 0);
    assert.ok(n3.lines.some((l) => l.msg === "announced offline"));
    assert.ok(net.oracle.accepted.length > before, "final report accepted");
  },
});
