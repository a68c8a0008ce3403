import assert from "node:assert/strict";
import { connect } from "node:net";
import { UnavailableError } from "../errors.ts";
import { memoryLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import { FakeGenerator, readSse } from "../testing/mod.ts";
import { ApiServer, openExposure } from "./api_server.ts";

const JSON_TYPE = { "content-type": "application/json" };

async function withServer(
  gen: FakeGenerator,
  fn: (server: ApiServer) => Promise<void>,
  extra: { maxBodyBytes?: number; bodyTimeoutMs?: number } = {},
) {
  const server = new ApiServer({ generator: gen, metrics: new Metrics(), port: 0, ...extra });
  await server.start();
  try {
    await fn(server);
  } finally {
    await server.stop(1000);
  }
}

Deno.test("ApiServer serves health and streamed generation over a real socket", async () => {
  const gen = new FakeGenerator();
  await withServer(gen, async (server) => {
    assert.ok(server.port > 0);
    const h = await fetch(`${server.url}/health`);
    assert.equal((await h.json()).status, "ok");
    const r = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      headers: JSON_TYPE,
      body: JSON.stringify({ inputs: "x", parameters: { max_new_tokens: 4 }, stream: true }),
    });
    const events = await readSse(r);
    assert.deepEqual(events, [
      '{"token":" one"}',
      '{"token":" two"}',
      '{"token":" three"}',
      '{"token":" four"}',
      "[DONE]",
    ]);
  });
});

Deno.test("ApiServer refuses a 10 MB body with 413 and keeps serving", async () => {
  const gen = new FakeGenerator();
  await withServer(gen, async (server) => {
    const big = JSON.stringify({ inputs: "a".repeat(10 * 1024 * 1024) });
    const r = await fetch(`${server.url}/api/v1/generate`, { method: "POST", body: big, headers: JSON_TYPE });
    assert.equal(r.status, 413);
    const b = await r.json();
    assert.match(b.error, /too large.*the limit is 65536 bytes/);
    // A chunked body (no Content-Length) is cut off while reading.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 10 * 1024 * 1024) return c.close();
        sent += 256 * 1024;
        c.enqueue(new Uint8Array(256 * 1024).fill(97));
      },
    });
    const r2 = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      body: stream,
      headers: JSON_TYPE,
    }).catch((e) => e);
    if (r2 instanceof Response) {
      assert.equal(r2.status, 413);
      await r2.body?.cancel();
    } // else: the server closed the connection while we were still sending, which is also a refusal
    const ok = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      body: '{"inputs":"still"}',
      headers: JSON_TYPE,
    });
    assert.equal(ok.status, 200);
    assert.equal(gen.calls.length, 1);
  }, { maxBodyBytes: 64 * 1024 });
});

Deno.test("a client that disconnects mid-stream aborts its generation and frees the slot", async () => {
  const gen = new FakeGenerator({ hang: true, script: [" a"] });
  await withServer(gen, async (server) => {
    const body = JSON.stringify({ inputs: "x", stream: true });
    const sock = connect(server.port, "127.0.0.1");
    await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
    sock.write(
      `POST /api/v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    // wait for the first token on the wire, then hang up
    await new Promise<void>((resolve) => {
      let seen = "";
      sock.on("data", (d) => {
        seen += d.toString();
        if (seen.includes('"token":" a"')) resolve();
      });
    });
    assert.equal(server.handler.inFlight, 1);
    sock.destroy();
    const deadline = Date.now() + 5000;
    while (server.handler.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(server.handler.inFlight, 0);
    assert.equal(gen.aborted, 1);
  });
});

/** Sends a raw POST over a socket, waits until the generation started, hangs up, and waits for the slot. */
async function hangUpWhileGenerating(server: ApiServer, gen: FakeGenerator, path: string, payload: unknown) {
  const body = JSON.stringify(payload);
  const sock = connect(server.port, "127.0.0.1");
  await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
  sock.write(
    `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
  await gen.started(1);
  assert.equal(server.handler.inFlight, 1);
  sock.destroy();
  const deadline = Date.now() + 5000;
  while (server.handler.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

Deno.test("a client that disconnects before its plain (non-streamed) answer aborts the generation and frees the slot", async () => {
  for (
    const [path, payload] of [
      ["/api/v1/generate", { inputs: "x" }],
      ["/v1/chat/completions", { messages: [{ role: "user", content: "x" }] }],
    ] as const
  ) {
    const gen = new FakeGenerator({ hang: true, script: [" a"] });
    await withServer(gen, async (server) => {
      await hangUpWhileGenerating(server, gen, path, payload);
      assert.equal(server.handler.inFlight, 0, path);
      assert.equal(gen.aborted, 1, path);
    });
  }
});

Deno.test("a client that disconnects before the first streamed token aborts the generation and frees the slot", async () => {
  const gen = new FakeGenerator({ hang: true, script: [] });
  await withServer(gen, async (server) => {
    await hangUpWhileGenerating(server, gen, "/api/v1/generate", { inputs: "x", stream: true });
    assert.equal(server.handler.inFlight, 0);
    assert.equal(gen.aborted, 1);
  });
});

Deno.test("stop() lets a running generation finish within the grace period, is idempotent", async () => {
  const gen = new FakeGenerator();
  const { logger, records } = memoryLogger();
  const server = new ApiServer({ generator: gen, metrics: new Metrics(), port: 0, logger });
  await server.start();
  const gate = gen.hold();
  const pending = fetch(`${server.url}/api/v1/generate`, {
    method: "POST",
    headers: JSON_TYPE,
    body: JSON.stringify({ inputs: "x", parameters: { max_new_tokens: 2 } }),
  });
  await gen.started(1);
  const stopping = server.stop(10_000);
  gate.open();
  const r = await pending;
  assert.equal(r.status, 200);
  assert.equal((await r.json()).generated_text, " one two");
  await stopping;
  await server.stop();
  assert.ok(records.some((r) => r.msg === "HTTP API stopped"));
  await assert.rejects(fetch(`${server.url}/health`));
});

Deno.test("start() on a port in use fails with API_PORT_IN_USE and a hint", async () => {
  const gen = new FakeGenerator();
  await withServer(gen, async (server) => {
    const second = new ApiServer({ generator: gen, metrics: new Metrics(), port: server.port });
    const err = await second.start().catch((e) => e);
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.code, "API_PORT_IN_USE");
    assert.match(err.hint, /API_PORT/);
    await second.stop();
  });
});

Deno.test("openExposure warns for an API reachable beyond loopback without API_SECRET only", () => {
  for (const host of ["0.0.0.0", "::", "192.168.1.20", "10.0.0.5", "[::]", "203.0.113.9"]) {
    const w = openExposure(host, undefined);
    assert.ok(w, host);
    assert.match(w.message, /no API_SECRET/);
    assert.match(w.hint, /API_SECRET/);
    assert.equal(openExposure(host, "s3cret-token"), undefined, `${host} with a secret`);
  }
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"]) {
    assert.equal(openExposure(host, undefined), undefined, host);
  }
});

Deno.test("ApiServer on loopback without a secret starts without the exposure warning", async () => {
  const { logger, records } = memoryLogger();
  const server = new ApiServer({ generator: new FakeGenerator(), metrics: new Metrics(), port: 0, logger });
  await server.start();
  await server.stop();
  assert.ok(records.some((r) => r.msg === "HTTP API listening"));
  assert.ok(!records.some((r) => r.level === "warn"));
});

Deno.test("over a socket, a body that stops arriving gets 408 and the server keeps serving", async () => {
  const gen = new FakeGenerator();
  await withServer(gen, async (server) => {
    const sock = connect(server.port, "127.0.0.1");
    await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
    sock.write(
      `POST /api/v1/generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"inputs":`,
    );
    const head = await new Promise<string>((resolve) => {
      let seen = "";
      sock.on("data", (d) => {
        seen += d.toString();
        if (seen.includes("\r\n\r\n")) resolve(seen);
      });
    });
    sock.destroy();
    assert.match(head, /^HTTP\/1\.1 408 /);
    assert.equal(server.handler.inFlight, 0);
    const ok = await fetch(`${server.url}/api/v1/generate`, {
      method: "POST",
      body: '{"inputs":"next"}',
      headers: JSON_TYPE,
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(gen.calls.map((c) => c.prompt), ["next"]);
  }, { bodyTimeoutMs: 100 });
});
