import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import {
  abortAll,
  assertWireError,
  attach,
  type Connected,
  connected,
  hello,
  HOST,
  listening,
  proveRaw,
  readExactly,
  untilClosed,
  writeAll,
} from "../testing/mod.ts";
import {
  connectDirect,
  type ConnectDirectOptions,
  DIRECT_HELLO_BYTES,
  DIRECT_MAGIC,
  DIRECT_MAGIC_PLAIN,
  DIRECT_PLAIN_CONFIRM,
  type DirectFrameChannel,
  directFrameChannel,
  loopbackConn,
  sealedFrame,
} from "./direct_channel.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher, randomSecret } from "./direct_cipher.ts";
import type { DirectListener, DirectListenerOptions, DirectTicket } from "./direct_listener.ts";
import { encodeVarint, lengthPrefixed } from "./length_prefix.ts";
import type { DirectOffer, ResultMessage, StepMessage } from "./protocol_messages.ts";
import { tensor } from "./tensor_codec.ts";
import { encodeFrame } from "./frame_codec.ts";
import { wireLimits } from "./wire_limits.ts";
import { freePort } from "../../tests/helpers/free_port.ts";

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

function hidden(b: number, t: number, h: number) {
  const data = new Float32Array(b * t * h);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 3.3 + i * 1e-3;
  // values that only survive a bit-exact path
  data[0] = -0;
  data[1] = 1.401298464324817e-45; // smallest subnormal
  data[2] = 3.4028234663852886e38;
  data[3] = -Infinity;
  new Uint32Array(data.buffer)[4] = 0x7fc01234; // NaN with a payload
  return tensor(data, [b, t, h]);
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

Deno.test("direct channel: messages both ways, a step's hidden tensor arrives bit-exact", async () => {
  await withPair(async (p) => {
    const h = hidden(2, 3, 8);
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

    const result: ResultMessage = { type: "result", stepId: 4, hidden: hidden(2, 1, 8), computeMs: 0.5 };
    await p.server.write(result);
    const back = await p.client.read();
    assert.ok(back && back.type === "result");
    assert.equal(back.computeMs, 0.5);
    assert.deepEqual(bytesOf(back.hidden.data), bytesOf(result.hidden.data));

    // several frames written back to back arrive in order (read-ahead and backpressure)
    for (let i = 0; i < 6; i++) {
      await p.client.write({ type: "step", stepId: 10 + i, hidden: hidden(1, 1, 8) });
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
    const h = hidden(1, 64, 4096); // 1 MiB of f32
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

Deno.test("connectDirect: a port nobody listens on is DIRECT_FAILED with a hint", async () => {
  const port = freePort(HOST);
  const offer = { port, ticket: randomSecret(), key: randomSecret() };
  await assert.rejects(
    connectDirect(HOST, offer, { connectMs: 2_000 }),
    (e) => assertWireError(e, "DIRECT_FAILED", new RegExp(`direct path to 127\\.0\\.0\\.1:${port} failed`)),
  );
});

/**
 * A raw server on a free port: `run` gets an offer for it (fresh secrets) and its first connection,
 * after `onAccept` if given; the server and that connection are closed afterwards.
 */
async function rawServer(
  run: (offer: DirectOffer, conn: Promise<Deno.Conn>) => Promise<void>,
  onAccept: (conn: Deno.Conn) => Promise<void> = () => Promise.resolve(),
): Promise<void> {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const offer = { port: (l.addr as Deno.NetAddr).port, ticket: randomSecret(), key: randomSecret() };
  const accepted = l.accept().then(async (conn) => {
    await onAccept(conn);
    return conn;
  });
  try {
    await run(offer, accepted);
  } finally {
    l.close();
    (await accepted.catch(() => undefined))?.close();
  }
}

/** A raw server that reads the client's hello, then answers with `reply` (and stays open). */
function provingServer(
  reply: Uint8Array,
  run: (offer: DirectOffer, conn: Promise<Deno.Conn>) => Promise<void>,
): Promise<void> {
  return rawServer(run, async (conn) => {
    await readExactly(conn, DIRECT_HELLO_BYTES);
    await writeAll(conn, reply);
  });
}

Deno.test("connectDirect: a server that accepts but never answers is DIRECT_FAILED after ackMs", async () => {
  await rawServer(async (offer, accepted) => {
    await assert.rejects(
      connectDirect(HOST, offer, { ackMs: 150 }),
      (e) => assertWireError(e, "DIRECT_FAILED", /no proof from the server within 150 ms/),
    );
    // the client sent its hello before giving up (on loopback: asking for plain frames)
    const conn = await accepted;
    const got = await readExactly(conn, DIRECT_HELLO_BYTES);
    assert.deepEqual(got.subarray(0, DIRECT_MAGIC.byteLength), DIRECT_MAGIC_PLAIN);
    assert.equal(await untilClosed(conn), "closed", "the client closed its socket");
  });
});

Deno.test("connectDirect: aborting its signal while waiting for the proof rejects with the reason", async () => {
  await rawServer(async (offer, accepted) => {
    const ac = new AbortController();
    const reason = new Error("session cancelled");
    const pending = connectDirect(HOST, offer, { signal: ac.signal, ackMs: 10_000 });
    const conn = await accepted;
    await readExactly(conn, DIRECT_HELLO_BYTES);
    ac.abort(reason);
    await assert.rejects(pending, (err) => err === reason);
    assert.equal(await untilClosed(conn), "closed");
  });
});

Deno.test("connectDirect: a server that proves another key is DIRECT_FAILED and the socket closed", async () => {
  const wrong = new DirectCipher(decodeSecret(randomSecret(), "key"), "server");
  await provingServer(lengthPrefixed(wrong.seal(new Uint8Array(0))), async (offer, accepted) => {
    await assert.rejects(
      connectDirect(HOST, offer, { ackMs: 5_000 }),
      (e) => assertWireError(e, "DIRECT_FAILED", /failed: direct frame 0 failed authentication/),
    );
    assert.equal(await untilClosed(await accepted), "closed");
  });
});

Deno.test("connectDirect: a proof declared larger than a proof can be is DIRECT_FAILED", async () => {
  await provingServer(encodeVarint(DIRECT_SEAL_OVERHEAD + 2), async (offer, accepted) => {
    await assert.rejects(
      connectDirect(HOST, offer, { ackMs: 5_000 }),
      (e) => assertWireError(e, "DIRECT_FAILED", /failed: frame of 18 bytes exceeds the cap of 17 bytes/),
    );
    assert.equal(await untilClosed(await accepted), "closed");
  });
  await provingServer(encodeVarint(1024 + DIRECT_SEAL_OVERHEAD + 1), async (offer, accepted) => {
    await assert.rejects(
      connectDirect(HOST, offer, { ackMs: 5_000, limits: wireLimits(1024) }),
      (e) => assertWireError(e, "DIRECT_FAILED", /failed: frame length prefix longer than 1 bytes/),
    );
    assert.equal(await untilClosed(await accepted), "closed");
  });
});

Deno.test("connectDirect: a proof granting plain frames nobody asked for, or anything else but empty, is DIRECT_FAILED", async () => {
  for (const [proof, plain] of [[[1], false], [[2], true], [[1, 1], true]] as const) {
    const key = randomSecret();
    const server = new DirectCipher(decodeSecret(key, "key"), "server");
    await provingServer(lengthPrefixed(server.seal(new Uint8Array(proof))), async (offer, accepted) => {
      await assert.rejects(
        connectDirect(HOST, { ...offer, key }, { ackMs: 5_000, plain }),
        (e) =>
          assertWireError(e, "DIRECT_FAILED", /did not prove the session key|exceeds the cap of 17 bytes/),
        `proof [${proof}], plain asked: ${plain}`,
      );
      assert.equal(await untilClosed(await accepted), "closed");
    });
  }
});

Deno.test("connectDirect: a signal aborted before the call rejects with its reason, ticket unused", async () => {
  const { listener, ticket } = await listening();
  try {
    const reason = new Error("already cancelled");
    let channel: DirectFrameChannel | undefined;
    await assert.rejects(
      connectDirect(HOST, ticket.offer, { signal: AbortSignal.abort(reason) }).then((ch) => {
        channel = ch;
      }),
      (err) => err === reason,
    );
    channel?.abort();
    assert.equal(listener.openOffers, 1, "the ticket was not presented");
    // the offer still works for a later attempt
    abortAll(await attach(ticket));
  } finally {
    ticket.cancel();
    await listener.stop();
  }
});

Deno.test("connectDirect: an offer whose ticket was never issued is DIRECT_FAILED", async () => {
  const { listener, ticket } = await listening();
  try {
    const forged = { port: listener.port, ticket: randomSecret(), key: ticket.offer.key };
    await assert.rejects(
      connectDirect(HOST, forged, { ackMs: 5_000 }),
      (e) => assertWireError(e, "DIRECT_FAILED", new RegExp(`127\\.0\\.0\\.1:${listener.port} failed`)),
    );
    // the genuine offer is untouched and still works
    assert.equal(listener.openOffers, 1);
    abortAll(await attach(ticket));
  } finally {
    await listener.stop();
  }
});

Deno.test("connectDirect: a malformed offer is BAD_FRAME before any connection", async () => {
  await assert.rejects(
    connectDirect(HOST, { port: 1, ticket: "short", key: randomSecret() }),
    (e) => assertWireError(e, "BAD_FRAME", /direct\.ticket must be 32 bytes/),
  );
  await assert.rejects(
    connectDirect(HOST, { port: 1, ticket: randomSecret(), key: randomSecret() + "A" }),
    (e) => assertWireError(e, "BAD_FRAME", /direct\.key must be 32 bytes/),
  );
});

Deno.test("plain frames: on loopback a client asks and the listener grants; frames go unsealed, bit-exact both ways", async () => {
  const p = await connected({}, { plain: true });
  try {
    assert.equal(p.client.sealed, false);
    assert.equal(p.server.sealed, false);
    const x = hidden(1, 3, 8);
    await p.client.write({ type: "step", stepId: 4, hidden: tensor(x.data, x.shape, "f32") });
    const got = await p.server.read() as StepMessage;
    assert.deepEqual(got.hidden.data, x.data);
    await p.server.write({ type: "close" });
    assert.deepEqual(await p.client.read(), { type: "close" });
  } finally {
    await p.close();
  }
  // a listener that never grants them keeps the frames sealed for a client that asks
  const q = await connected({ plainLoopback: false }, { plain: true });
  try {
    assert.equal(q.client.sealed, true);
    assert.equal(q.server.sealed, true);
    await q.client.write({ type: "close" });
    assert.deepEqual(await q.server.read(), { type: "close" });
  } finally {
    await q.close();
  }
});

Deno.test("plain frames: on the wire, the proof is sealed and grants them, the client confirms sealed; then a frame is its length and its bytes", async () => {
  const { listener, ticket } = await listening();
  const conn = await Deno.connect({ hostname: HOST, port: ticket.offer.port });
  try {
    await writeAll(conn, hello(ticket.offer.ticket, DIRECT_MAGIC_PLAIN));
    const proof = await readExactly(conn, 1 + 1 + DIRECT_SEAL_OVERHEAD);
    assert.equal(proof[0], 1 + DIRECT_SEAL_OVERHEAD, "one sealed byte");
    const key = decodeSecret(ticket.offer.key, "key");
    const cipher = new DirectCipher(key, "client");
    assert.deepEqual([...cipher.open(proof.subarray(1))], [1], "plain frames granted");
    // the client proves the key before any plain frame: one sealed byte 1, then plain frames
    await writeAll(conn, sealedFrame(cipher, DIRECT_PLAIN_CONFIRM));
    await writeAll(conn, lengthPrefixed(Uint8Array.of(7, 8, 9)));
    const server = await ticket.attached;
    assert.ok(server && !server.sealed);
    assert.deepEqual([...(await server.readRaw())!], [7, 8, 9]);
    await server.writeRaw(Uint8Array.of(5));
    assert.deepEqual([...(await readExactly(conn, 2))], [1, 5]);
    server.abort();
  } finally {
    conn.close();
    await listener.stop();
  }
});

/** The bytes of a plain frame: its length, then an encoded step. */
function plainStep(): Uint8Array {
  const x = hidden(1, 1, 8);
  return lengthPrefixed(encodeFrame({ type: "step", stepId: 0, hidden: tensor(x.data, x.shape, "f32") }));
}

Deno.test("plain frames: holding the ticket without the key (in-path behind a loopback forwarder) runs nothing", async () => {
  // The server sees a loopback connection (ssh -R, socat), so it grants plain frames; an attacker
  // in the path saw the ticket in the hello (it travels in the clear) but not the key.
  for (const magic of [DIRECT_MAGIC_PLAIN, new TextEncoder().encode("PLMDIRP1"), DIRECT_MAGIC]) {
    const what = new TextDecoder().decode(magic);
    const { listener, ticket } = await listening();
    const conn = await Deno.connect({ hostname: HOST, port: ticket.offer.port });
    try {
      await writeAll(conn, hello(ticket.offer.ticket, magic));
      const len = (await readExactly(conn, 1))[0];
      await readExactly(conn, len); // the proof, which the attacker cannot open
      await writeAll(conn, plainStep()); // a step, unsealed, with no proof of the key
      const server = await ticket.attached;
      const got = server ? await server.read().catch((e) => e) : null;
      assert.ok(
        got === null || got instanceof Error,
        `${what}: the session got ${JSON.stringify(got?.type)}`,
      );
      server?.abort();
      assert.equal(await untilClosed(conn), "closed", `${what}: the connection is dropped`);
    } finally {
      conn.close();
      await listener.stop();
    }
  }
});

Deno.test("plain frames: a garbled confirmation, or a frame in its place, fails the first read and drops the connection", async () => {
  for (const confirm of ["wrong key", "wrong byte", "a plain frame instead"] as const) {
    const { listener, ticket } = await listening();
    const conn = await Deno.connect({ hostname: HOST, port: ticket.offer.port });
    try {
      await writeAll(conn, hello(ticket.offer.ticket, DIRECT_MAGIC_PLAIN));
      await readExactly(conn, 1 + 1 + DIRECT_SEAL_OVERHEAD);
      const key = confirm === "wrong key"
        ? crypto.getRandomValues(new Uint8Array(32))
        : decodeSecret(ticket.offer.key, "key");
      const cipher = new DirectCipher(key, "client");
      if (confirm === "a plain frame instead") await writeAll(conn, plainStep());
      else {
        await writeAll(
          conn,
          sealedFrame(cipher, confirm === "wrong byte" ? Uint8Array.of(2) : DIRECT_PLAIN_CONFIRM),
        );
        await writeAll(conn, plainStep());
      }
      const server = await ticket.attached;
      assert.ok(server, confirm);
      await assert.rejects(server.read(), (e) => e instanceof WireError && e.code === "BAD_FRAME", confirm);
      assert.equal(await untilClosed(conn), "closed", confirm);
    } finally {
      conn.close();
      await listener.stop();
    }
  }
});

Deno.test("plain frames: the hello of earlier versions (PLMDIRP1) gets sealed frames", async () => {
  const { listener, ticket } = await listening();
  const conn = await Deno.connect({ hostname: HOST, port: ticket.offer.port });
  try {
    await writeAll(conn, hello(ticket.offer.ticket, new TextEncoder().encode("PLMDIRP1")));
    const proof = await readExactly(conn, 1 + DIRECT_SEAL_OVERHEAD);
    const cipher = new DirectCipher(decodeSecret(ticket.offer.key, "key"), "client");
    assert.equal(cipher.open(proof.subarray(1)).byteLength, 0, "an empty proof: sealed frames");
    const server = await ticket.attached;
    assert.ok(server?.sealed);
    server.abort();
  } finally {
    conn.close();
    await listener.stop();
  }
});

Deno.test("loopbackConn: only where both ends are loopback addresses", () => {
  const conn = (local: string, remote: string) =>
    ({
      localAddr: { transport: "tcp", hostname: local, port: 1 },
      remoteAddr: { transport: "tcp", hostname: remote, port: 2 },
    }) as unknown as Deno.Conn;
  assert.equal(loopbackConn(conn("127.0.0.1", "127.0.0.1")), true);
  assert.equal(loopbackConn(conn("127.0.0.1", "127.8.9.1")), true);
  assert.equal(loopbackConn(conn("::1", "::1")), true);
  assert.equal(loopbackConn(conn("::ffff:127.0.0.1", "127.0.0.1")), true);
  assert.equal(loopbackConn(conn("127.0.0.1", "10.0.0.2")), false, "a forwarder's remote side");
  assert.equal(loopbackConn(conn("192.168.1.4", "127.0.0.1")), false);
  assert.equal(loopbackConn(conn("8.8.8.8", "1.1.1.1")), false);
  assert.equal(loopbackConn(conn("localhost", "localhost")), false, "names are not addresses");
});
