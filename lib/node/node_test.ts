import assert from "node:assert/strict";
import { FakeGenerator } from "../testing/mod.ts";
import { resolveConfig } from "../config/resolve_config.ts";
import type { Config } from "../config/types.ts";
import { ChainError, ConfigError } from "../errors.ts";
import { memoryLogger } from "../util/logger.ts";
import { createNode, runNode } from "./node.ts";
import type { AnnounceState, NodeParts, NodeSpan } from "./types.ts";

const JSON_TYPE = { "content-type": "application/json" };

function testConfig(extra: Record<string, string> = {}): Config {
  return resolveConfig({
    env: {
      PLUMISE_PRIVATE_KEY: "0x" + "11".repeat(32),
      API_PORT: "0",
      API_HOST: "127.0.0.1",
      ...extra,
    },
    dotenv: {},
    system: { availableMemoryBytes: 8 * 2 ** 30 },
  }).config;
}

interface FakeOptions {
  offline?: boolean;
  failAt?: string;
  registerError?: Error;
  /** Runs when load() is called (e.g. to abort the start signal). */
  onLoad?: () => void;
  /** load() resolves only after this does. */
  loadGate?: Promise<void>;
}

/** Parts that record every call in order. */
function fakeParts(o: FakeOptions = {}) {
  const events: string[] = [];
  const announced: AnnounceState[] = [];
  const gen = new FakeGenerator();
  const fail = (name: string) => {
    events.push(name);
    if (o.failAt === name) throw new ChainError("CHAIN_UNREACHABLE", `${name} failed on purpose`);
  };
  let loaded: NodeSpan | undefined;
  let drainGrace: number | undefined;
  /** What the swarm status reports as coverage (tests change it). */
  const coverage = { totalBlocks: 6, coveredBlocks: 6, complete: true, servers: 2 };
  const parts: NodeParts = {
    generator: gen,
    runtime: {
      totalBlocks: () => Promise.resolve(6),
      load: (span) => {
        fail("runtime.load");
        o.onLoad?.();
        return (o.loadGate ?? Promise.resolve()).then(() => {
          loaded = span;
        });
      },
      throughput: () => Promise.resolve((fail("runtime.throughput"), 42.5)),
      figures: () => loaded ? { openSessions: 2, cacheTokensTotal: 1000, cacheTokensLeft: 600 } : undefined,
      stop: () => Promise.resolve(fail("runtime.stop")),
    },
    swarm: {
      start: () => Promise.resolve(fail("swarm.start")),
      chooseSpan: (total) => Promise.resolve((fail(`swarm.chooseSpan(${total})`), { start: 2, end: 4 })),
      announce: (state, span) => {
        fail(`swarm.announce(${state},${span.start}:${span.end})`);
        announced.push(state);
        return Promise.resolve();
      },
      serve: (tp) => Promise.resolve(fail(`swarm.serve(${tp})`)),
      drain: (g) => {
        drainGrace = g;
        return Promise.resolve(fail("swarm.drain"));
      },
      stop: () => Promise.resolve(fail("swarm.stop")),
      status: () => ({
        peerId: "12D3KooWFake",
        coverage: { ...coverage },
        reachability: {
          status: "private",
          observed_host: "198.18.0.1",
          reason: "2 peers could not connect back to 198.18.0.1: behind NAT or a firewall",
          relays: ["12D3KooWRelay"],
          relaying: false,
        },
      }),
    },
  };
  if (!o.offline) {
    (parts as { chain?: NodeParts["chain"] }).chain = {
      address: "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A",
      preflight: () => Promise.resolve(fail("chain.preflight")),
      start: () => {
        fail("chain.start");
        return o.registerError ? Promise.reject(o.registerError) : Promise.resolve();
      },
      stop: () => Promise.resolve(fail("chain.stop")),
      status: () => ({ registered: true }),
    };
    (parts as { reporter?: NodeParts["reporter"] }).reporter = {
      start: () => Promise.resolve(fail("reporter.start")),
      stop: (final) => Promise.resolve(fail(`reporter.stop(final=${final})`)),
      status: () => ({ lastReport: "ok" }),
    };
  }
  return { parts, events, announced, gen, coverage, drainGrace: () => drainGrace };
}

Deno.test("start runs the phases in the documented order, the HTTP API first", async () => {
  const f = fakeParts();
  const { logger, records } = memoryLogger("info");
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts), logger });
  await node.start();
  try {
    assert.equal(node.state, "online");
    assert.deepEqual(f.events, [
      "chain.preflight",
      "swarm.start",
      "swarm.chooseSpan(6)",
      "swarm.announce(joining,2:4)",
      "runtime.load",
      "runtime.throughput",
      "swarm.serve(42.5)",
      "swarm.announce(online,2:4)",
      "chain.start",
      "reporter.start",
    ]);
    const msgs = records.filter((r) => r.level === "info").map((r) => r.msg);
    for (
      const m of [
        "parts ready",
        "chain preflight",
        "swarm started",
        "blocks chosen",
        "announced joining",
        "blocks loaded",
        "throughput ready",
        "announced online",
        "chain agent started (registration checked, heartbeat and reward loops)",
        "reporter started",
        "HTTP API listening",
        "node online",
      ]
    ) assert.ok(msgs.includes(m), `log line "${m}" in ${JSON.stringify(msgs)}`);
    assert.ok(
      msgs.indexOf("HTTP API listening") < msgs.indexOf("parts ready"),
      "the API listens before anything loads",
    );
    assert.ok(typeof node.msToOnline === "number");

    const health = await (await fetch(`${node.apiUrl}/health`)).json();
    assert.equal(health.status, "ok");
    assert.equal(health.mode, "pipeline");
    assert.equal(health.address, "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A");
    assert.equal(health.peer_id, "12D3KooWFake");
    assert.deepEqual(health.span, { start: 2, end: 4 });
    assert.equal(health.state, "online");
    assert.deepEqual(health.swarm, { total_blocks: 6, covered_blocks: 6, complete: true, servers: 2 });
    assert.deepEqual(health.chain, { registered: true });
    assert.equal(health.reachability.status, "private", "/health says whether the internet reaches the node");
    assert.deepEqual(health.reachability.relays, ["12D3KooWRelay"]);

    const gen = await (await fetch(`${node.apiUrl}/api/v1/generate`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ inputs: "hi", parameters: { max_new_tokens: 2 } }),
    })).json();
    assert.equal(gen.generated_text, " one two");
    assert.equal(f.gen.prepared, 1, "the node's API prepares the parts' generator");

    const metrics = await (await fetch(`${node.apiUrl}/metrics`)).text();
    assert.match(metrics, /^plumise_sessions_open 2$/m);
    assert.match(metrics, /^plumise_cache_tokens\{state="used"\} 400$/m);
    assert.match(metrics, /^plumise_cache_tokens\{state="free"\} 600$/m);
    assert.match(metrics, /^plumise_swarm_servers 2$/m);
    assert.match(metrics, /^plumise_node_online 1$/m);
  } finally {
    await node.stop(1000);
  }
});

Deno.test("/health answers while the blocks load (503 loading), 200 ok once online, 503 degraded without coverage", async () => {
  let openLoad!: () => void;
  const loadGate = new Promise<void>((r) => (openLoad = r));
  let inLoad!: () => void;
  const loading = new Promise<void>((r) => (inLoad = r));
  const f = fakeParts({ onLoad: () => inLoad(), loadGate });
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts) });
  const started = node.start();
  try {
    await loading;
    assert.ok(node.apiUrl, "the API listens before the blocks are loaded");
    let r = await fetch(`${node.apiUrl}/health`);
    assert.equal(r.status, 503, "the gateway must not count a loading node as online");
    let h = await r.json();
    assert.equal(h.status, "loading");
    assert.match(h.reason, /loading blocks 2:4/);
    assert.equal(h.mode, "pipeline");
    assert.equal(h.model, f.gen.info().model);
    const g = await fetch(`${node.apiUrl}/api/v1/generate`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ inputs: "too early" }),
    });
    assert.equal(g.status, 503);
    assert.equal((await g.json()).code, "LOADING");

    openLoad();
    await started;
    r = await fetch(`${node.apiUrl}/health`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).status, "ok");

    Object.assign(f.coverage, { coveredBlocks: 2, complete: false });
    r = await fetch(`${node.apiUrl}/health`);
    assert.equal(r.status, 503);
    h = await r.json();
    assert.equal(h.status, "degraded");
    assert.match(h.reason, /2 of 6 blocks/);
  } finally {
    openLoad();
    await started.catch(() => {});
    await node.stop(100);
  }
});

Deno.test("/health answers while the parts build; a start that fails there closes the API", async () => {
  let seen: { code: number; body: Record<string, unknown> } | undefined;
  let url: string | undefined;
  const config = testConfig();
  const node = createNode(config, {
    parts: async () => {
      url = node.apiUrl;
      const r = await fetch(`${url}/health`);
      seen = { code: r.status, body: await r.json() };
      throw new ConfigError("CONFIG_INVALID", "the parts could not be built");
    },
  });
  await assert.rejects(node.start(), ConfigError);
  assert.equal(seen?.code, 503);
  assert.equal(seen?.body.status, "loading");
  assert.equal(seen?.body.model, config.model);
  assert.match(String(seen?.body.reason), /building the parts/);
  await assert.rejects(fetch(`${url}/health`), "the API was stopped with the failed start");
  await node.stop();
});

Deno.test("stop announces offline first, drains, sends the final report, then stops in reverse order", async () => {
  const f = fakeParts();
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts) });
  await node.start();
  const url = node.apiUrl!;
  f.events.length = 0;
  await node.stop(1234);
  assert.equal(node.state, "stopped");
  assert.deepEqual(f.events, [
    "swarm.announce(offline,2:4)",
    "swarm.drain",
    "reporter.stop(final=true)",
    "chain.stop",
    "runtime.stop",
    "swarm.stop",
  ]);
  assert.equal(f.drainGrace(), 1234);
  await assert.rejects(fetch(`${url}/health`));
  f.events.length = 0;
  await node.stop();
  assert.deepEqual(f.events, [], "stop is idempotent");
});

Deno.test("offline mode: no chain, no reporter; the swarm and API still run", async () => {
  const f = fakeParts({ offline: true });
  const node = createNode(testConfig({ PLUMISE_OFFLINE: "true" }), { parts: () => Promise.resolve(f.parts) });
  await node.start();
  const health = await (await fetch(`${node.apiUrl}/health`)).json();
  assert.equal(health.status, "ok");
  assert.equal(health.address, undefined);
  await node.stop(100);
  assert.ok(!f.events.some((e) => e.startsWith("chain") || e.startsWith("reporter")));
  assert.ok(f.events.includes("swarm.announce(offline,2:4)"));
});

Deno.test("a failing phase tears down what was started, in reverse, and rethrows", async () => {
  const f = fakeParts({ failAt: "runtime.throughput" });
  const { logger, records } = memoryLogger();
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts), logger });
  const err = await node.start().catch((e) => e);
  assert.ok(err instanceof ChainError);
  assert.match(err.message, /runtime.throughput failed on purpose/);
  assert.equal(node.state, "failed");
  const after = f.events.slice(f.events.indexOf("runtime.throughput") + 1);
  assert.deepEqual(after, ["swarm.announce(offline,2:4)", "swarm.drain", "runtime.stop", "swarm.stop"]);
  assert.ok(records.some((r) => r.level === "error" && r.msg.startsWith("start failed")));
  await node.stop();
});

Deno.test("aborting the start signal (SIGINT during load) stops the node cleanly", async () => {
  const ac = new AbortController();
  const f = fakeParts({ onLoad: () => ac.abort(new Error("interrupted")) });
  // abort makes the next phase that looks at the signal fail; our fake throughput ignores signals,
  // so the node notices it before going online.
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts) });
  const err = await node.start({ signal: ac.signal }).catch((e) => e);
  assert.ok(err instanceof Error);
  assert.equal(node.state, "failed");
  assert.ok(f.events.includes("swarm.stop"));
  assert.ok(f.events.includes("runtime.stop"));
});

Deno.test("a failed registration is logged and the node serves anyway; a ConfigError is fatal", async () => {
  const f = fakeParts({
    registerError: new ChainError("TX_REVERTED", "registration reverted: no balance"),
  });
  const { logger, records } = memoryLogger();
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts), logger });
  await node.start();
  assert.equal(node.state, "online");
  assert.ok(records.some((r) => r.level === "warn" && /chain agent failed to start/.test(r.msg)));
  await node.stop(100);

  const g = fakeParts({ registerError: new ConfigError("INVALID_PRIVATE_KEY", "bad key") });
  const node2 = createNode(testConfig(), { parts: () => Promise.resolve(g.parts) });
  await assert.rejects(node2.start(), ConfigError);
});

Deno.test("while stopping, /health says stopping and new generations get 503", async () => {
  const f = fakeParts();
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts) });
  await node.start();
  const gate = f.gen.hold();
  const running = fetch(`${node.apiUrl}/api/v1/generate`, {
    method: "POST",
    headers: JSON_TYPE,
    body: JSON.stringify({ inputs: "x", parameters: { max_new_tokens: 1 } }),
  });
  await f.gen.started(1);
  const stopping = node.stop(10_000);
  // poll (bounded) until the API has begun draining
  let health: { status?: string } = {};
  for (let i = 0; i < 200 && health.status !== "stopping"; i++) {
    health = await (await fetch(`${node.apiUrl}/health`)).json();
  }
  assert.equal(health.status, "stopping");
  const refused = await fetch(`${node.apiUrl}/api/v1/generate`, {
    method: "POST",
    headers: JSON_TYPE,
    body: '{"inputs":"y"}',
  });
  assert.equal(refused.status, 503);
  assert.equal((await refused.json()).code, "SHUTTING_DOWN");
  // the in-flight request finishes within the grace period
  gate.open();
  const r = await running;
  assert.equal(r.status, 200);
  assert.equal((await r.json()).generated_text, " one");
  await stopping;
});

Deno.test("runNode serves until the signal aborts, then stops gracefully; an interrupted start is no error", async () => {
  const f = fakeParts();
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts) });
  const ac = new AbortController();
  const running = runNode(node, { signal: ac.signal, graceMs: 500 });
  for (let i = 0; i < 1000 && node.state !== "online"; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(node.state, "online");
  ac.abort();
  await running;
  assert.equal(node.state, "stopped");
  assert.ok(f.events.includes("reporter.stop(final=true)"));

  const ac2 = new AbortController();
  const g = fakeParts({ onLoad: () => ac2.abort() });
  const node2 = createNode(testConfig(), { parts: () => Promise.resolve(g.parts) });
  await runNode(node2, { signal: ac2.signal, graceMs: 100 });
  assert.equal(node2.state, "failed");
  assert.ok(g.events.includes("swarm.stop"));
});

Deno.test("a completed HTTP generation is recorded with the chain part and its proof goes to the reporter", async () => {
  const f = fakeParts();
  const recorded: Array<[string, string, number]> = [];
  const proofs: unknown[] = [];
  const proof = {
    modelHash: "0x" + "11".repeat(32),
    inputHash: "0x" + "22".repeat(32),
    outputHash: "0x" + "33".repeat(32),
    tokenCount: 2,
  };
  (f.parts.chain as { recordInference?: unknown }).recordInference = (p: string, o: string, n: number) => {
    recorded.push([p, o, n]);
    return proof;
  };
  (f.parts.reporter as { addProof?: unknown }).addProof = (p: unknown) => proofs.push(p);
  const node = createNode(testConfig(), { parts: () => Promise.resolve(f.parts) });
  await node.start();
  try {
    const r = await fetch(`${node.apiUrl}/api/v1/generate`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ inputs: "p", parameters: { max_new_tokens: 2 } }),
    });
    assert.equal(r.status, 200);
    await r.body?.cancel();
    assert.deepEqual(recorded, [["p", " one two", 2]]);
    assert.deepEqual(proofs, [proof]);
  } finally {
    await node.stop(100);
  }
});

Deno.test("API_MAX_CONCURRENT and API_TIMEOUT reach the node's HTTP API", async () => {
  const f = fakeParts({ offline: true });
  const node = createNode(
    testConfig({ PLUMISE_OFFLINE: "true", API_MAX_CONCURRENT: "1", API_TIMEOUT: "1" }),
    {
      parts: () => Promise.resolve(f.parts),
    },
  );
  await node.start();
  try {
    const gate = f.gen.hold();
    const body = JSON.stringify({ inputs: "hi", parameters: { max_new_tokens: 2 } });
    const first = fetch(`${node.apiUrl}/api/v1/generate`, { method: "POST", headers: JSON_TYPE, body });
    await f.gen.started(1);
    const second = await fetch(`${node.apiUrl}/api/v1/generate`, {
      method: "POST",
      headers: JSON_TYPE,
      body,
    });
    assert.equal(second.status, 429, "one generation at a time");
    assert.match((await second.json()).error, /the limit is 1/);
    // the held generation runs past API_TIMEOUT = 1 s and is stopped with 504
    const timedOut = await first;
    assert.equal(timedOut.status, 504);
    assert.match((await timedOut.json()).error, /within 1000 ms/);
    gate.open();
  } finally {
    await node.stop(1000);
  }
});

Deno.test("runNode stops within SHUTDOWN_GRACE by default", async () => {
  const f = fakeParts({ offline: true });
  const { logger, records } = memoryLogger("info");
  const node = createNode(testConfig({ PLUMISE_OFFLINE: "true", SHUTDOWN_GRACE: "3" }), {
    parts: () => Promise.resolve(f.parts),
    logger,
  });
  const ac = new AbortController();
  const running = runNode(node, { signal: ac.signal });
  for (let i = 0; i < 1000 && node.state !== "online"; i++) await new Promise((r) => setTimeout(r, 5));
  ac.abort();
  await running;
  assert.equal(node.state, "stopped");
  assert.equal(f.drainGrace(), 3000, "the swarm drains within the configured grace");
  assert.equal(records.find((r) => r.msg === "stopping")?.graceMs, 3000);
});

Deno.test("GATEWAY_RELAY_URL: the node signs in to the gateway's relay and serves its requests; offline it cannot", async () => {
  const { GatewayRelayStub } = await import("../../tests/helpers/gateway_relay_stub.ts");
  const { waitFor } = await import("../../tests/helpers/wait_for.ts");
  const { walletFromKey } = await import("../chain/wallet.ts");
  const stub = new GatewayRelayStub();
  const wallet = walletFromKey("0x" + "11".repeat(32));
  const f = fakeParts();
  const chain = f.parts.chain! as {
    -readonly [K in keyof NonNullable<NodeParts["chain"]>]: NonNullable<NodeParts["chain"]>[K];
  };
  chain.address = wallet.address;
  chain.signMessage = (m: string) => wallet.signMessage(m);
  const node = createNode(testConfig({ GATEWAY_RELAY_URL: stub.url }), {
    parts: () => Promise.resolve(f.parts),
  });
  try {
    await node.start();
    await waitFor(() => stub.agents.has(wallet.address.toLowerCase()), { what: "the node's sign-in" });
    const answer = await stub.ask(wallet.address, {
      messages: [{ role: "user", content: "hello" }],
      maxTokens: 2,
    });
    assert.equal(answer.end?.type, "response", JSON.stringify(answer.end));
    assert.deepEqual(answer.end?.choices, [{ message: { content: " one two" } }]);
    assert.equal(f.gen.calls.length, 1, "generated by the node's generator, through its API");
    const health = await (await fetch(`${node.apiUrl}/health`)).json();
    assert.equal(health.gateway_relay.state, "connected");
    assert.equal(health.gateway_relay.served, 1);
  } finally {
    await node.stop();
    await stub.stop();
  }
  const offline = createNode(
    testConfig({ GATEWAY_RELAY_URL: "ws://127.0.0.1:9/ws/agent-relay", PLUMISE_OFFLINE: "true" }),
    {
      parts: () => Promise.resolve(fakeParts({ offline: true }).parts),
    },
  );
  await assert.rejects(offline.start(), (e) => e instanceof ConfigError && /no agent wallet/.test(e.message));
});
