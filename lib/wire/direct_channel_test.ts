import assert from "node:assert/strict";
import {
  assertWireError,
  bitExactTensor,
  type Connected,
  connected,
  hello,
  HOST,
  listening,
  proveRaw,
  untilClosed,
  writeAll,
} from "../testing/mod.ts";
import { type ConnectDirectOptions, DIRECT_HELLO_BYTES, directFrameChannel } from "./direct_channel.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher, randomSecret } from "./direct_cipher.ts";
import type { DirectListener, DirectListenerOptions, DirectTicket } from "./direct_listener.ts";
import { encodeVarint, lengthPrefixed } from "./length_prefix.ts";
import type { ResultMessage, StepMessage } from "./protocol_messages.ts";
import { wireLimits } from "./wire_limits.ts";
import { ByteBudget, DIRECT_FRAME_BUDGET, FREE_PENDING_BYTES } from "./byte_budget.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";

/** A raw client that sent the hello for `ticket` and read the server's proof; and the server's channel. */
async function rawClient(listener: DirectListener, ticket: DirectTicket) {
  const conn = await Deno.connect({ hostname: HOST, port: listener.port });
  try {
    const cipher = await proveRaw(conn, ticket.offer);
    const server = await ticket.attached;
    assert.ok(server);
    return { conn, cipher, server };
  } catch (err) {
    conn.close();
    throw err;
  }
}

/**
 * Runs `fn` with a raw client attached to a fresh listener (see `rawClient`); closes its socket
 * (if `fn` did not) and stops the listener.
 */
async function withRawClient(
  options: Partial<DirectListenerOptions>,
  fn: (raw: Awaited<ReturnType<typeof rawClient>>) => Promise<void>,
): Promise<void> {
  const { listener, ticket } = await listening(options);
  try {
    const raw = await rawClient(listener, ticket);
    try {
      await fn(raw);
    } finally {
      try {
        raw.conn.close();
      } catch {
        // already closed by the test
      }
    }
  } finally {
    await listener.stop();
  }
}

/** Runs `fn` with a fresh connected session (`connected()`), closed afterwards. */
async function withPair(
  fn: (p: Connected) => Promise<void>,
  connect: ConnectDirectOptions = {},
): Promise<void> {
  const p = await connected({}, connect);
  try {
    await fn(p);
  } finally {
    await p.close();
  }
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

Deno.test("direct channel: messages both ways, a step's hidden tensor arrives bit-exact", async () => {
  await withPair(async (p) => {
    const h = bitExactTensor(2, 3, 8);
    const step: StepMessage = { type: "step", stepId: 4, hidden: h, startFromPosition: 1, hypoIds: [1, 0] };
    await p.client.write(step);
    const got = await p.server.read();
    assert.ok(got && got.type === "step");
    assert.equal(got.stepId, 4);
    assert.equal(got.startFromPosition, 1);
    assert.deepEqual(got.hypoIds, [1, 0]);
    assert.equal(got.hidden.dtype, "f32");
    assert.deepEqual(got.hidden.shape, [2, 3, 8]);
    assert.deepEqual(bytesOf(got.hidden.data), bytesOf(h.data));

    const result: ResultMessage = {
      type: "result",
      stepId: 4,
      hidden: bitExactTensor(2, 1, 8),
      computeMs: 0.5,
    };
    await p.server.write(result);
    const back = await p.client.read();
    assert.ok(back && back.type === "result");
    assert.equal(back.computeMs, 0.5);
    assert.deepEqual(bytesOf(back.hidden.data), bytesOf(result.hidden.data));

    // several frames written back to back arrive in order (read-ahead and backpressure)
    for (let i = 0; i < 6; i++) {
      await p.client.write({ type: "step", stepId: 10 + i, hidden: bitExactTensor(1, 1, 8) });
    }
    await p.client.write({ type: "close" });
    for (let i = 0; i < 6; i++) {
      const m = await p.server.read();
      assert.ok(m && m.type === "step");
      assert.equal(m.stepId, 10 + i);
    }
    assert.deepEqual(await p.server.read(), { type: "close" });
    // raw frames share the same sealed sequence
    await p.server.writeRaw(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await p.client.readRaw(), new Uint8Array([1, 2, 3]));
  });
});

Deno.test("direct channel: a large frame (several TCP reads) arrives whole", async () => {
  await withPair(async (p) => {
    const h = bitExactTensor(1, 64, 4096); // 1 MiB of f32
    await Promise.all([
      p.client.write({ type: "step", stepId: 1, hidden: h }),
      (async () => {
        const m = await p.server.read();
        assert.ok(m && m.type === "step");
        assert.deepEqual(bytesOf(m.hidden.data), bytesOf(h.data));
      })(),
    ]);
  });
});

Deno.test("direct channel: a read aborted by its signal rejects with the reason; the connection survives", async () => {
  await withPair(async (p) => {
    const ac = new AbortController();
    const reason = new Error("step deadline");
    const pending = p.server.read({ signal: ac.signal });
    ac.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
    assert.equal(p.server.writable, true);
    // an already aborted signal rejects at once with its reason
    await assert.rejects(p.server.read({ signal: ac.signal }), (err) => err === reason);

    // the server can still answer (e.g. with an error frame) and the client reads it
    await p.server.write({ type: "error", code: "TIMEOUT", message: "step took too long", stepId: 1 });
    const m = await p.client.read();
    assert.ok(m && m.type === "error");
    assert.equal(m.code, "TIMEOUT");
    // and the server still reads what the client sends next
    await p.client.write({ type: "close" });
    assert.deepEqual(await p.server.read(), { type: "close" });
  });
});

Deno.test("direct channel: the peer closing cleanly ends read() with null", async () => {
  await withPair(async (p) => {
    await p.client.write({ type: "close" });
    await p.client.close();
    assert.equal(p.client.writable, false);
    assert.deepEqual(await p.server.read(), { type: "close" });
    assert.equal(await p.server.read(), null);
    assert.equal(await p.server.readRaw(), null, "stays ended");

    // and the other way round
    await withPair(async (q) => {
      await q.server.close();
      assert.equal(await q.client.read(), null);
    });
  });
});

Deno.test("direct channel: after a local abort, read and write fail with STREAM_CLOSED", async () => {
  await withPair(async (p) => {
    p.client.abort();
    assert.equal(p.client.writable, false);
    await assert.rejects(
      p.client.write({ type: "close" }),
      (e) => assertWireError(e, "STREAM_CLOSED", /closed/),
    );
    await assert.rejects(p.client.read(), (e) => assertWireError(e, "STREAM_CLOSED", /closed/));
    // the server sees the end of the connection
    assert.equal(await p.server.read(), null);
  });
});

Deno.test("direct channel: the peer dying mid-frame is BAD_FRAME", async () => {
  await withRawClient({}, async ({ conn, cipher, server }) => {
    const frame = lengthPrefixed(cipher.seal(new TextEncoder().encode("a frame that never ends")));
    await writeAll(conn, frame.subarray(0, frame.byteLength - 5));
    conn.close();
    await assert.rejects(
      server.read(),
      (e) => assertWireError(e, "BAD_FRAME", /ended inside a frame \(\d+ bytes pending\)/),
    );
    assert.equal(server.writable, false, "the channel closed itself");
  });
});

Deno.test("direct channel: a tampered frame is BAD_FRAME and drops the connection", async () => {
  await withRawClient({}, async ({ conn, cipher, server }) => {
    const sealed = cipher.seal(new TextEncoder().encode("tampered"));
    sealed[0] ^= 0xff;
    await writeAll(conn, lengthPrefixed(sealed));
    await assert.rejects(
      server.read(),
      (e) => assertWireError(e, "BAD_FRAME", /direct frame 0 failed authentication/),
    );
    assert.equal(server.writable, false);
    assert.equal(await untilClosed(conn), "closed");
  });
});

Deno.test("direct channel: a declared frame length above the cap is TOO_LARGE before the body arrives", async () => {
  const limits = wireLimits(1024);
  const cap = 1024 + DIRECT_SEAL_OVERHEAD;
  await withRawClient({ limits }, async ({ conn, server }) => {
    // only the prefix: the body never comes, the socket stays open
    await writeAll(conn, encodeVarint(cap + 1));
    await assert.rejects(
      server.read(),
      (e) =>
        assertWireError(e, "TOO_LARGE", new RegExp(`frame of ${cap + 1} bytes exceeds the cap of ${cap}`)),
    );
    assert.equal(server.writable, false);
    assert.equal(await untilClosed(conn), "closed", "the server dropped the connection");
  });
});

Deno.test("direct channel: a frame of exactly the cap passes; the client's limits apply to what it reads", async () => {
  const limits = wireLimits(1024);
  await withPair(async (p) => {
    await p.server.writeRaw(new Uint8Array(1024).fill(9));
    const got = await p.client.readRaw();
    assert.equal(got?.byteLength, 1024);
    await p.server.writeRaw(new Uint8Array(1025));
    await assert.rejects(
      p.client.readRaw(),
      (e) => assertWireError(e, "TOO_LARGE", /exceeds the cap of 1040/),
    );
  }, { limits });
});

Deno.test("direct channel: frames sent together with the hello are read (initial bytes)", async () => {
  const { listener, ticket } = await listening();
  try {
    const conn = await Deno.connect({ hostname: HOST, port: listener.port });
    try {
      const cipher = new DirectCipher(decodeSecret(ticket.offer.key, "key"), "client");
      const f0 = lengthPrefixed(cipher.seal(new TextEncoder().encode("first")));
      const f1 = lengthPrefixed(cipher.seal(new TextEncoder().encode("second")));
      const all = new Uint8Array(DIRECT_HELLO_BYTES + f0.byteLength + f1.byteLength);
      all.set(hello(ticket.offer.ticket));
      all.set(f0, DIRECT_HELLO_BYTES);
      all.set(f1, DIRECT_HELLO_BYTES + f0.byteLength);
      await writeAll(conn, all);
      const server = await ticket.attached;
      assert.ok(server);
      assert.equal(new TextDecoder().decode((await server.readRaw())!), "first");
      assert.equal(new TextDecoder().decode((await server.readRaw())!), "second");
      server.abort();
    } finally {
      conn.close();
    }
  } finally {
    await listener.stop();
  }
});

/** Two connected TCP sockets on 127.0.0.1. */
async function socketPair(): Promise<[Deno.TcpConn, Deno.TcpConn]> {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  try {
    return await Promise.all([
      Deno.connect({ hostname: HOST, port: (l.addr as Deno.NetAddr).port }),
      l.accept(),
    ]);
  } finally {
    l.close();
  }
}

Deno.test("direct channel: concurrent writes are sealed and sent in call order", async () => {
  await withPair(async (p) => {
    // large and small frames mixed, none awaited before the next is issued
    const sizes = [300_000, 10, 200_000, 0, 5, 400_000, 1, 2];
    const frames = sizes.map((n, i) => new Uint8Array(n).fill(i + 1));
    const writes = frames.map((f) => p.client.writeRaw(f));
    for (const [i, f] of frames.entries()) {
      const got = await p.server.readRaw();
      assert.ok(got, `frame ${i}`);
      assert.equal(got.byteLength, f.byteLength, `frame ${i} length`);
      assert.ok(got.every((b) => b === i + 1), `frame ${i} content`);
    }
    await Promise.all(writes);
  });
});

Deno.test("direct channel: aborting a blocked write rejects with the reason and closes the connection", async () => {
  const [a, b] = await socketPair();
  const channel = directFrameChannel(a, new DirectCipher(decodeSecret(randomSecret(), "key"), "client"));
  try {
    // the peer never reads: a frame far larger than the socket buffers blocks
    const ac = new AbortController();
    const reason = new Error("session cancelled");
    const write = channel.writeRaw(new Uint8Array(16 * 1024 * 1024), { signal: ac.signal });
    // let the write fill the socket buffers and stall (the kernel takes a few MiB at most)
    let settled = false;
    write.then(() => (settled = true), () => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false, "the write is stalled");
    ac.abort(reason);
    await assert.rejects(write, (err) => err === reason);
    assert.equal(channel.writable, false);
    await assert.rejects(
      channel.writeRaw(new Uint8Array(1)),
      (e) => assertWireError(e, "STREAM_CLOSED", /closed/),
    );
    assert.equal(await untilClosed(b), "closed");
  } finally {
    channel.abort();
    b.close();
  }
});

Deno.test("direct channel: directFrameChannel over a plain socket pair, in both roles", async () => {
  const [a, b] = await socketPair();
  const key = decodeSecret(randomSecret(), "key");
  const client = directFrameChannel(a, new DirectCipher(key, "client"));
  const server = directFrameChannel(b, new DirectCipher(key, "server"));
  try {
    await client.write({ type: "info_request" });
    assert.deepEqual(await server.read(), { type: "info_request" });
    await server.write({ type: "table_request", model: "org/m" });
    assert.deepEqual(await client.read(), { type: "table_request", model: "org/m" });
  } finally {
    client.abort();
    server.abort();
  }
  // channels with the same role cannot talk (a reflected direction)
  const [c, d] = await socketPair();
  const x = directFrameChannel(c, new DirectCipher(key, "client"));
  const y = directFrameChannel(d, new DirectCipher(key, "client"));
  try {
    await x.write({ type: "close" });
    await assert.rejects(y.read(), (e) => assertWireError(e, "BAD_FRAME", /failed authentication/));
  } finally {
    x.abort();
    y.abort();
  }
});

Deno.test("direct channel: a server connection's incomplete frames come out of the direct budget, up to its share", async () => {
  const key = HOST;
  const before = DIRECT_FRAME_BUDGET.held(key);
  await withRawClient({}, async ({ conn, cipher, server }) => {
    // half of a 4 MiB frame: what is beyond the free 16 KiB is taken under the client's address
    const frame = lengthPrefixed(cipher.seal(new Uint8Array(4 << 20)));
    await writeAll(conn, frame.subarray(0, 2 << 20));
    await waitFor(() => DIRECT_FRAME_BUDGET.held(key) - before >= (2 << 20) - FREE_PENDING_BYTES - 64, {
      what: "the half frame counted",
    });
    // the rest: the whole frame is read ahead (still held), then read (given back)
    await writeAll(conn, frame.subarray(2 << 20));
    assert.equal((await server.readRaw())?.byteLength, 4 << 20);
    await waitFor(() => DIRECT_FRAME_BUDGET.held(key) === before, { what: "given back once read" });
  });
  assert.equal(DIRECT_FRAME_BUDGET.held(key), before);
});

/** A loopback TCP pair: the client socket, and a plain-frame server channel holding from `budget` under `key`. */
async function budgetedPair(budget: ByteBudget, key: string) {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const client = await Deno.connect({ hostname: HOST, port: (l.addr as Deno.NetAddr).port });
  const accepted = await l.accept();
  l.close();
  return {
    client,
    server: directFrameChannel(accepted, null, undefined, undefined, undefined, { budget, key }),
  };
}

Deno.test("direct channel: past its budget a connection is dropped with BUSY and gives everything back", async () => {
  const budget = new ByteBudget(8 << 20, 1 << 20);
  // plain frames, a 1 MiB share for "client"
  const { client, server } = await budgetedPair(budget, "client");
  try {
    // two complete 600 KiB frames read ahead and never handled: together over the share
    const frame = lengthPrefixed(new Uint8Array(600 << 10));
    await writeAll(client, frame);
    await writeAll(client, frame).catch(() => {});
    assert.equal(await untilClosed(client), "closed", "the server dropped the connection");
    assert.equal(budget.held(), 0, "nothing stays taken");
    // frames read ahead before the refusal are not served: the read fails with BUSY
    await assert.rejects(
      server.readRaw(),
      (e) => assertWireError(e, "BUSY", /bytes of direct frames held \(\d+ from client\), the most/),
    );
    assert.equal(server.writable, false);
  } finally {
    client.close();
  }
});

Deno.test("direct channel: frames read ahead before the peer closed are given back when the channel is dropped", async () => {
  const budget = new ByteBudget(64 << 20, 64 << 20);
  const { client, server } = await budgetedPair(budget, "c");
  // a frame sent, then the client's end: the pump ends normally with the frame read ahead
  await writeAll(client, lengthPrefixed(new Uint8Array(1 << 20)));
  client.close();
  await waitFor(() => budget.held() > 0, { what: "the frame counted" });
  await new Promise((r) => setTimeout(r, 50));
  // the session ends without reading it (cancel, idle timeout): dropped, and given back
  server.abort();
  assert.equal(budget.held(), 0);
});
