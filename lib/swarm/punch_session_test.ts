import assert from "node:assert/strict";
import { FakeBackend, fakeHidden } from "../testing/mod.ts";
import { memoryLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import { type FrameChannel, memoryFrameChannelPair } from "./frame_channel.ts";
import { serveInferenceStream } from "./inference_handler.ts";
import { clientPunch, servePunch } from "./punch_session.ts";
import { RateBudget } from "./rate_budget.ts";
import { SessionManager } from "./session_manager.ts";
import { ProtocolClient } from "./swarm_client_transport.ts";

/** `ch` as a channel whose peer was reached through a relay. */
const relayed = (ch: FrameChannel): FrameChannel => Object.create(ch, { relayed: { value: true } });
const unknownHost = { publicHost: () => Promise.resolve(undefined) };

Deno.test("punch: a client that does not know its public address sends nothing and stays relayed", async () => {
  const { a, b } = memoryFrameChannelPair();
  assert.equal(await clientPunch(a, unknownHost, {}), undefined);
  await a.write({ type: "close" });
  assert.equal((await b.read())?.type, "close", "nothing was sent before");
});

Deno.test("punch: a server that does not know its address refuses, and the session goes on on the stream", async () => {
  const { a, b } = memoryFrameChannelPair();
  const { logger } = memoryLogger();
  const ac = new AbortController();
  const served = servePunch(b, { type: "punch", host: "81.2.69.1", port: 40000 }, unknownHost, {
    signal: ac.signal,
    logger,
  });
  const reply = await a.read();
  assert.deepEqual(reply, {
    type: "punch_reply",
    ok: false,
    reason: "this server does not know its public address",
  });
  await a.write({ type: "close" });
  assert.deepEqual(await served, { first: { type: "close" } });
});

Deno.test("punch: a server never connects into its own network or to a well-known port for a client", async () => {
  const { logger } = memoryLogger();
  for (const [host, port] of [["192.168.1.1", 40000], ["127.0.0.1", 40000], ["81.2.69.1", 22]] as const) {
    const { a, b } = memoryFrameChannelPair();
    let connected = false;
    const served = servePunch(b, { type: "punch", host, port }, {
      publicHost: () => Promise.resolve("81.2.69.9"),
      connect: () => {
        connected = true;
        return new Promise(() => {});
      },
    }, { signal: new AbortController().signal, logger });
    const reply = await a.read();
    assert.equal(reply?.type === "punch_reply" && reply.ok, false, `${host}:${port}`);
    assert.match(reply?.type === "punch_reply" ? reply.reason ?? "" : "", /public address, port ≥ 1024/);
    await a.write({ type: "close" });
    await served;
    assert.equal(connected, false);
  }
});

Deno.test({
  name: "punch: a step arriving on the stream before the punch connects wins (the client gave up on it)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { a, b } = memoryFrameChannelPair();
    const { logger } = memoryLogger();
    const ac = new AbortController();
    // (the connection never opens: nothing is sent anywhere)
    let aborted = false;
    const served = servePunch(b, { type: "punch", host: "81.2.69.2", port: 40000 }, {
      publicHost: () => Promise.resolve("81.2.69.9"),
      connect: (_port, _target, o) =>
        new Promise((_, reject) =>
          o?.signal?.addEventListener("abort", () => {
            aborted = true;
            reject(new Error("aborted"));
          }, { once: true })
        ),
    }, { signal: ac.signal, logger });
    const reply = await a.read();
    assert.equal(reply?.type, "punch_reply");
    assert.equal(reply?.type === "punch_reply" && reply.ok, true);
    await a.write({ type: "close" });
    assert.deepEqual(await served, { first: { type: "close" } });
    assert.equal(aborted, true, "the punch was given up");
  },
});

Deno.test("inference handler: sessions reached through a relay are offered a punch, never the direct port", async () => {
  const runtime = new FakeBackend({
    modelId: "m",
    numBlocks: 4,
    start: 0,
    end: 4,
    hiddenSize: 8,
    direct: { host: "127.0.0.1", port: 0 },
  });
  await runtime.start();
  const { logger } = memoryLogger();
  const sessions = new SessionManager({ runtime });
  const deps = { runtime, model: "m", metrics: new Metrics(), logger, sessions, punch: unknownHost };
  try {
    for (const viaRelay of [false, true]) {
      const { a, b } = memoryFrameChannelPair();
      const served = serveInferenceStream(viaRelay ? relayed(b) : b, deps);
      const client = new ProtocolClient(() => Promise.resolve(viaRelay ? relayed(a) : a), {}, {
        punch: { publicHost: () => Promise.resolve("81.2.69.9") },
      });
      const s = await client.openInference({
        sessionId: `s${viaRelay}`,
        model: "m",
        start: 0,
        end: 4,
        maxLength: 8,
        batch: 1,
      });
      // relayed: the client asked for a punch, the server (no public address) refused: relayed steps
      assert.equal(s.path, viaRelay ? "relayed" : "stream");
      const y = await s.step(fakeHidden(1, 2, 8, 1));
      assert.deepEqual(y.hidden.shape, [1, 2, 8]);
      await s.close();
      await served;
    }
  } finally {
    await sessions.stop();
    await runtime.stop();
  }
});

Deno.test("punch: punches toward one address, and in all, are rate-limited; past that the session stays relayed", async () => {
  const { logger } = memoryLogger();
  const budgets = {
    perTarget: new RateBudget({ burst: 2, perMinute: 1 }),
    inAll: new RateBudget({ burst: 3, perMinute: 1 }),
  };
  let connects = 0;
  const punch = async (host: string) => {
    const { a, b } = memoryFrameChannelPair();
    const ac = new AbortController();
    const served = servePunch(b, { type: "punch", host, port: 40000 }, {
      publicHost: () => Promise.resolve("81.2.69.9"),
      connect: () => (connects++, Promise.reject(new Error("no answer"))),
      budgets,
    }, { signal: ac.signal, logger });
    const reply = await a.read();
    await a.write({ type: "close" });
    await served;
    return reply?.type === "punch_reply" ? reply : undefined;
  };
  assert.equal((await punch("81.2.69.1"))?.ok, true);
  assert.equal((await punch("81.2.69.1"))?.ok, true);
  const third = await punch("81.2.69.1");
  assert.equal(third?.ok, false);
  assert.match(third?.reason ?? "", /punches toward that address or in all as often as it does/);
  // another address still gets one, until the budget in all is spent
  assert.equal((await punch("81.2.69.2"))?.ok, true);
  assert.equal((await punch("81.2.69.3"))?.ok, false);
  assert.equal(connects, 3);
});
