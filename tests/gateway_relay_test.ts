/**
 * The gateway's WebSocket relay (lib/api/gateway_relay.ts) against a local imitation of the
 * gateway's `/ws/agent-relay` (tests/helpers/gateway_relay_stub.ts): sign-in and its refusals,
 * reconnects, concurrent requests through the node's own HTTP API handler (streamed and not,
 * under its concurrency limit, counted in its metrics), and requests cancelled by a closing socket.
 */
import assert from "node:assert/strict";
import { Wallet } from "ethers";
import { ApiHandler } from "../lib/api/api_handler.ts";
import { FakeGenerator } from "../lib/testing/mod.ts";
import { GatewayRelay, type GatewayRelayOptions } from "../lib/api/gateway_relay.ts";
import { Metrics } from "../lib/util/metrics.ts";
import { GatewayRelayStub } from "./helpers/gateway_relay_stub.ts";
import { waitFor } from "./helpers/wait_for.ts";

const KEY = "0x" + "4c".repeat(32);
const wallet = new Wallet(KEY);

function setup(o: Partial<GatewayRelayOptions> & { maxConcurrent?: number; generator?: FakeGenerator } = {}) {
  const stub = new GatewayRelayStub();
  const generator = o.generator ?? new FakeGenerator();
  const metrics = new Metrics();
  const handler = new ApiHandler({
    generator,
    metrics,
    maxConcurrent: o.maxConcurrent ?? 4,
    apiSecret: "s3cret",
  });
  const relay = new GatewayRelay({
    url: stub.url,
    address: wallet.address,
    model: "test-org/tiny-model",
    sign: (m) => wallet.signMessage(m),
    handle: (r) => handler.handle(r),
    apiSecret: "s3cret",
    reconnect: { initialMs: 20, maxMs: 200 },
    ...o,
  });
  const connected = () =>
    waitFor(() => relay.status().state === "connected" && stub.agents.size === 1, {
      timeoutMs: 10_000,
      what: "sign-in",
    });
  return { stub, generator, metrics, relay, connected, handler };
}

Deno.test("gateway relay: signs in, serves concurrent streamed and plain requests through the API", async () => {
  const { stub, generator, metrics, relay, connected } = setup({ maxConcurrent: 2 });
  try {
    relay.start();
    await connected();
    assert.ok(stub.agents.has(wallet.address.toLowerCase()));
    // three at once against a limit of two: two run, the third gets the API's 429 as its error
    const gate = generator.hold();
    const a = stub.send(wallet.address, {
      messages: [{ role: "user", content: "hi" }],
      maxTokens: 3,
      stream: true,
    });
    const b = stub.send(wallet.address, { messages: [{ role: "user", content: "yo" }], maxTokens: 2 });
    await generator.started(2);
    const c = await stub.ask(wallet.address, {
      messages: [{ role: "user", content: "third" }],
      maxTokens: 2,
    });
    assert.equal(c.end?.type, "error");
    assert.match(String(c.end?.message), /429.*limit is 2/);
    gate.open();
    await stub.until(() => a.answer.end !== undefined && b.answer.end !== undefined, 10_000, "both answers");
    assert.deepEqual(a.answer.chunks, [" one", " two", " three"]);
    assert.equal(a.answer.end?.type, "done");
    assert.equal((a.answer.end?.usage as { completion_tokens: number }).completion_tokens, 3);
    assert.deepEqual(b.answer.chunks, [], "a plain request is answered once");
    assert.equal(b.answer.end?.type, "response");
    assert.deepEqual(b.answer.end?.choices, [{ message: { content: " one two" } }]);
    assert.equal((b.answer.end?.usage as { completion_tokens: number }).completion_tokens, 2);
    // sampling parameters reach the generation
    const params = generator.calls.map((x) => x.params.maxNewTokens).sort();
    assert.deepEqual(params, [2, 3]);
    assert.equal(metrics.value("plumise_api_generated_tokens_total"), 5, "counted like any API generation");
    assert.deepEqual(relay.status().served, 2);
    // malformed requests are answered with an error naming them; pings with pongs
    const bad = await stub.ask(wallet.address, { messages: "nope" });
    assert.equal(bad.end?.type, "error");
    assert.match(String(bad.end?.message), /messages must be an array/);
  } finally {
    await relay.stop();
    await stub.stop();
  }
});

Deno.test("gateway relay: a closing socket cancels its requests; the relay reconnects and signs in again", async () => {
  const generator = new FakeGenerator({ hang: true });
  const { stub, relay, connected } = setup({ generator });
  try {
    relay.start();
    await connected();
    const r = stub.send(wallet.address, {
      messages: [{ role: "user", content: "long" }],
      maxTokens: 100,
      stream: true,
    });
    await stub.until(() => r.answer.chunks.length > 0, 10_000, "a first chunk");
    stub.drop(wallet.address);
    // the generation was aborted, not left running for nobody
    await waitFor(() => generator.aborted === 1, { timeoutMs: 10_000, what: "the generation's abort" });
    assert.equal(r.answer.end, undefined, "nothing more arrives for the dropped request");
    await stub.until(() => stub.connections === 2 && stub.agents.size === 1, 10_000, "the reconnect");
    await connected();
    assert.ok(relay.status().reconnects >= 1);
  } finally {
    await relay.stop();
    await stub.stop();
  }
});

Deno.test("gateway relay: refused sign-ins (bad signature, clock drift) and a replacing connection wait longest", async () => {
  const other = Wallet.createRandom();
  // signed by the wrong key: 4005
  const forged = setup({ sign: (m) => other.signMessage(m), reconnect: { initialMs: 20, maxMs: 60_000 } });
  try {
    forged.relay.start();
    await forged.stub.until(() => forged.stub.closes.some((c) => c.code === 4005), 10_000, "the 4005 close");
    await waitFor(() => forged.relay.status().state === "waiting", { what: "waiting" });
    assert.match(forged.relay.status().lastError ?? "", /Invalid signature/);
    assert.equal(forged.stub.connections, 1, "no quick retry after a refused sign-in");
  } finally {
    await forged.relay.stop();
    await forged.stub.stop();
  }
  // a clock 10 minutes off: 4004
  const skewed = setup({ now: () => Date.now() - 600_000, reconnect: { initialMs: 20, maxMs: 60_000 } });
  try {
    skewed.relay.start();
    await skewed.stub.until(() => skewed.stub.closes.some((c) => c.code === 4004), 10_000, "the 4004 close");
    await waitFor(() => skewed.relay.status().state === "waiting", { what: "waiting" });
    assert.match(skewed.relay.status().lastError ?? "", /Timestamp/);
  } finally {
    await skewed.relay.stop();
    await skewed.stub.stop();
  }
  // the same agent twice: the second connection replaces the first (4010), which then backs off
  const first = setup({ reconnect: { initialMs: 20, maxMs: 60_000 } });
  const second = new GatewayRelay({
    url: first.stub.url,
    address: wallet.address,
    model: "test-org/tiny-model",
    sign: (m) => wallet.signMessage(m),
    handle: (r) => first.handler.handle(r),
    apiSecret: "s3cret",
  });
  try {
    first.relay.start();
    await first.connected();
    second.start();
    await first.stub.until(() => first.stub.closes.some((c) => c.code === 4010), 10_000, "the 4010 close");
    await waitFor(() => first.relay.status().state === "waiting", { what: "the replaced one waiting" });
    await waitFor(() => second.status().state === "connected", { what: "the second connected" });
    assert.match(first.relay.status().lastError ?? "", /replaced/i);
  } finally {
    await second.stop();
    await first.relay.stop();
    await first.stub.stop();
  }
});

Deno.test("gateway relay: pings both ways; a silent gateway is dropped; a slow first token is an error", async () => {
  const generator = new FakeGenerator();
  const { stub, relay, connected, handler } = setup({ generator, pingMs: 50, firstTokenMs: 100 });
  try {
    relay.start();
    await connected();
    stub.sendRaw(wallet.address, JSON.stringify({ type: "ping" }));
    await stub.until(() => stub.pongs === 1, 5_000, "a pong");
    await stub.until(() => stub.pings >= 2, 5_000, "the relay's own pings");
    // no first token within firstTokenMs: the request ends with an error (the generation is cancelled)
    const gate = generator.hold();
    const slow = await stub.ask(wallet.address, { messages: [{ role: "user", content: "x" }], stream: true });
    assert.equal(slow.end?.type, "error");
    assert.match(String(slow.end?.message), /no first token within 0\.1 s/);
    // the abandoned generation is stopped and its API slot freed at once, not at API_TIMEOUT
    await waitFor(() => handler.inFlight === 0 && generator.aborted === 1, {
      timeoutMs: 5_000,
      what: "the slot freed",
    });
    gate.open();
    // a gateway that stops answering is given up on and connected to again
    stub.silent = true;
    await stub.until(() => stub.connections === 2, 5_000, "a new connection after the silence");
  } finally {
    await relay.stop();
    await stub.stop();
  }
});
