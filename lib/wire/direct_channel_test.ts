import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import {
  connectDirect,
  type ConnectDirectOptions,
  DIRECT_HELLO_BYTES,
  DIRECT_MAGIC,
  type DirectFrameChannel,
  directFrameChannel,
} from "./direct_channel.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher, randomSecret } from "./direct_cipher.ts";
import { DirectListener, type DirectListenerOptions, type DirectTicket } from "./direct_listener.ts";
import { encodeVarint, lengthPrefixed } from "./length_prefix.ts";
import type { DirectOffer, ResultMessage, StepMessage } from "./protocol_messages.ts";
import { tensor } from "./tensor_codec.ts";
import { wireLimits } from "./wire_limits.ts";

const HOST = "127.0.0.1";

interface Pair {
  listener: DirectListener;
  client: DirectFrameChannel;
  server: DirectFrameChannel;
  close(): Promise<void>;
}

/** A listener on a free port and one session connected through it. */
async function pair(
  options: Partial<DirectListenerOptions> = {},
  connect: ConnectDirectOptions = {},
): Promise<Pair> {
  const listener = new DirectListener({ host: HOST, port: 0, ...options });
  await listener.start();
  try {
    const t = listener.offer();
    const client = await connectDirect(HOST, t.offer, connect);
    const server = await t.attached;
    assert.ok(server, "the listener attached the session");
    return {
      listener,
      client,
      server,
      async close() {
        client.abort();
        server.abort();
        await listener.stop();
      },
    };
  } catch (err) {
    await listener.stop();
    throw err;
  }
}

/** A listener on a free port with one open offer, for raw clients. */
async function listening(options: Partial<DirectListenerOptions> = {}) {
  const listener = new DirectListener({ host: HOST, port: 0, ...options });
  await listener.start();
  const ticket = listener.offer();
  return { listener, ticket };
}

function hello(offer: DirectOffer): Uint8Array {
  const h = new Uint8Array(DIRECT_HELLO_BYTES);
  h.set(DIRECT_MAGIC);
  h.set(decodeSecret(offer.ticket, "ticket"), DIRECT_MAGIC.byteLength);
  return h;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.byteLength) off += await conn.write(bytes.subarray(off));
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await conn.read(out.subarray(got));
    if (k === null) throw new Error(`connection ended after ${got} of ${n} bytes`);
    got += k;
  }
  return out;
}

/** Resolves "closed" when the peer ends or resets the connection. */
async function untilClosed(conn: Deno.Conn): Promise<"closed"> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while ((await conn.read(buf)) !== null) {
      // discard
    }
  } catch {
    // reset by peer counts as closed
  }
  return "closed";
}

/**
 * A raw client that sent the hello for `ticket` and read the server's proof; returns the
 * socket, the client's cipher (its counters past the proof) and the server's channel.
 */
async function rawClient(listener: DirectListener, ticket: DirectTicket) {
  const conn = await Deno.connect({ hostname: HOST, port: listener.port });
  await writeAll(conn, hello(ticket.offer));
  const cipher = new DirectCipher(decodeSecret(ticket.offer.key, "key"), "client");
  const proof = await readExactly(conn, 1 + DIRECT_SEAL_OVERHEAD);
  assert.equal(proof[0], DIRECT_SEAL_OVERHEAD, "the proof is one length-prefixed empty frame");
  assert.equal(cipher.open(proof.subarray(1)).byteLength, 0);
  const server = await ticket.attached;
  assert.ok(server);
  return { conn, cipher, server };
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

function assertWireError(err: unknown, code: string, re: RegExp): true {
  assert.ok(err instanceof WireError, `expected WireError, got ${err}`);
  assert.equal(err.code, code);
  assert.match(err.message, re);
  assert.ok(err.hint.length > 0, "hint");
  return true;
}

function freePort(): number {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("direct channel: messages both ways, a step's hidden tensor arrives bit-exact", async () => {
  const p = await pair();
  try {
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
  } finally {
    await p.close();
  }
});

Deno.test("direct channel: a large frame (several TCP reads) arrives whole", async () => {
  const p = await pair();
  try {
    const h = hidden(1, 64, 4096); // 1 MiB of f32
    await Promise.all([
      p.client.write({ type: "step", stepId: 1, hidden: h }),
      (async () => {
        const m = await p.server.read();
        assert.ok(m && m.type === "step");
        assert.deepEqual(bytesOf(m.hidden.data), bytesOf(h.data));
      })(),
    ]);
  } finally {
    await p.close();
  }
});

Deno.test("direct channel: a read aborted by its signal rejects with the reason; the connection survives", async () => {
  const p = await pair();
  try {
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
  } finally {
    await p.close();
  }
});

Deno.test("direct channel: the peer closing cleanly ends read() with null", async () => {
  const p = await pair();
  try {
    await p.client.write({ type: "close" });
    await p.client.close();
    assert.equal(p.client.writable, false);
    assert.deepEqual(await p.server.read(), { type: "close" });
    assert.equal(await p.server.read(), null);
    assert.equal(await p.server.readRaw(), null, "stays ended");

    // and the other way round
    const q = await pair();
    try {
      await q.server.close();
      assert.equal(await q.client.read(), null);
    } finally {
      await q.close();
    }
  } finally {
    await p.close();
  }
});

Deno.test("direct channel: after a local abort, read and write fail with STREAM_CLOSED", async () => {
  const p = await pair();
  try {
    p.client.abort();
    assert.equal(p.client.writable, false);
    await assert.rejects(
      p.client.write({ type: "close" }),
      (e) => assertWireError(e, "STREAM_CLOSED", /closed/),
    );
    await assert.rejects(p.client.read(), (e) => assertWireError(e, "STREAM_CLOSED", /closed/));
    // the server sees the end of the connection
    assert.equal(await p.server.read(), null);
  } finally {
    await p.close();
  }
});

Deno.test("direct channel: the peer dying mid-frame is BAD_FRAME", async () => {
  const { listener, ticket } = await listening();
  try {
    const { conn, cipher, server } = await rawClient(listener, ticket);
    const frame = lengthPrefixed(cipher.seal(new TextEncoder().encode("a frame that never ends")));
    await writeAll(conn, frame.subarray(0, frame.byteLength - 5));
    conn.close();
    await assert.rejects(
      server.read(),
      (e) => assertWireError(e, "BAD_FRAME", /ended inside a frame \(\d+ bytes pending\)/),
    );
    assert.equal(server.writable, false, "the channel closed itself");
  } finally {
    await listener.stop();
  }
});

Deno.test("direct channel: a tampered frame is BAD_FRAME and drops the connection", async () => {
  const { listener, ticket } = await listening();
  try {
    const { conn, cipher, server } = await rawClient(listener, ticket);
    try {
      const sealed = cipher.seal(new TextEncoder().encode("tampered"));
      sealed[0] ^= 0xff;
      await writeAll(conn, lengthPrefixed(sealed));
      await assert.rejects(
        server.read(),
        (e) => assertWireError(e, "BAD_FRAME", /direct frame 0 failed authentication/),
      );
      assert.equal(server.writable, false);
      assert.equal(await untilClosed(conn), "closed");
    } finally {
      conn.close();
    }
  } finally {
    await listener.stop();
  }
});

Deno.test("direct channel: a declared frame length above the cap is TOO_LARGE before the body arrives", async () => {
  const limits = wireLimits(1024);
  const cap = 1024 + DIRECT_SEAL_OVERHEAD;
  const { listener, ticket } = await listening({ limits });
  try {
    const { conn, server } = await rawClient(listener, ticket);
    try {
      // only the prefix: the body never comes, the socket stays open
      await writeAll(conn, encodeVarint(cap + 1));
      await assert.rejects(
        server.read(),
        (e) =>
          assertWireError(e, "TOO_LARGE", new RegExp(`frame of ${cap + 1} bytes exceeds the cap of ${cap}`)),
      );
      assert.equal(server.writable, false);
      assert.equal(await untilClosed(conn), "closed", "the server dropped the connection");
    } finally {
      conn.close();
    }
  } finally {
    await listener.stop();
  }
});

Deno.test("direct channel: a frame of exactly the cap passes; the client's limits apply to what it reads", async () => {
  const limits = wireLimits(1024);
  const p = await pair({}, { limits });
  try {
    await p.server.writeRaw(new Uint8Array(1024).fill(9));
    const got = await p.client.readRaw();
    assert.equal(got?.byteLength, 1024);
    await p.server.writeRaw(new Uint8Array(1025));
    await assert.rejects(
      p.client.readRaw(),
      (e) => assertWireError(e, "TOO_LARGE", /exceeds the cap of 1040/),
    );
  } finally {
    await p.close();
  }
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
      all.set(hello(ticket.offer));
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
  const p = await pair();
  try {
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
  } finally {
    await p.close();
  }
});

Deno.test("direct channel: aborting a blocked write rejects with the reason and closes the connection", async () => {
  const [a, b] = await socketPair();
  const channel = directFrameChannel(a, decodeSecret(randomSecret(), "key"), "client");
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
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: HOST, port: (l.addr as Deno.NetAddr).port }),
    l.accept(),
  ]);
  l.close();
  const key = decodeSecret(randomSecret(), "key");
  const client = directFrameChannel(a, key, "client");
  const server = directFrameChannel(b, key, "server");
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
  const l2 = Deno.listen({ hostname: HOST, port: 0 });
  const [c, d] = await Promise.all([
    Deno.connect({ hostname: HOST, port: (l2.addr as Deno.NetAddr).port }),
    l2.accept(),
  ]);
  l2.close();
  const x = directFrameChannel(c, key, "client");
  const y = directFrameChannel(d, key, "client");
  try {
    await x.write({ type: "close" });
    await assert.rejects(y.read(), (e) => assertWireError(e, "BAD_FRAME", /failed authentication/));
  } finally {
    x.abort();
    y.abort();
  }
});

Deno.test("connectDirect: a port nobody listens on is DIRECT_FAILED with a hint", async () => {
  const port = freePort();
  const offer = { port, ticket: randomSecret(), key: randomSecret() };
  await assert.rejects(
    connectDirect(HOST, offer, { connectMs: 2_000 }),
    (e) => assertWireError(e, "DIRECT_FAILED", new RegExp(`direct path to 127\\.0\\.0\\.1:${port} failed`)),
  );
});

Deno.test("connectDirect: a server that accepts but never answers is DIRECT_FAILED after ackMs", async () => {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const accepted = l.accept();
  try {
    await assert.rejects(
      connectDirect(HOST, { port, ticket: randomSecret(), key: randomSecret() }, { ackMs: 150 }),
      (e) => assertWireError(e, "DIRECT_FAILED", /no proof from the server within 150 ms/),
    );
    // the client sent its hello before giving up
    const conn = await accepted;
    try {
      const got = await readExactly(conn, DIRECT_HELLO_BYTES);
      assert.deepEqual(got.subarray(0, DIRECT_MAGIC.byteLength), DIRECT_MAGIC);
      assert.equal(await untilClosed(conn), "closed", "the client closed its socket");
    } finally {
      conn.close();
    }
  } finally {
    l.close();
  }
});

Deno.test("connectDirect: aborting its signal while waiting for the proof rejects with the reason", async () => {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  const accepted = l.accept();
  try {
    const ac = new AbortController();
    const reason = new Error("session cancelled");
    const pending = connectDirect(HOST, { port, ticket: randomSecret(), key: randomSecret() }, {
      signal: ac.signal,
      ackMs: 10_000,
    });
    const conn = await accepted;
    try {
      await readExactly(conn, DIRECT_HELLO_BYTES);
      ac.abort(reason);
      await assert.rejects(pending, (err) => err === reason);
      assert.equal(await untilClosed(conn), "closed");
    } finally {
      conn.close();
    }
  } finally {
    l.close();
  }
});

/** A raw server on a free port that reads the client's hello, then answers with `reply` (and stays open). */
async function provingServer(
  reply: Uint8Array,
  run: (offer: DirectOffer, conn: Promise<Deno.Conn>) => Promise<void>,
): Promise<void> {
  const l = Deno.listen({ hostname: HOST, port: 0 });
  const offer = { port: (l.addr as Deno.NetAddr).port, ticket: randomSecret(), key: randomSecret() };
  const accepted = l.accept().then(async (conn) => {
    await readExactly(conn, DIRECT_HELLO_BYTES);
    await writeAll(conn, reply);
    return conn;
  });
  try {
    await run(offer, accepted);
  } finally {
    l.close();
    (await accepted.catch(() => undefined))?.close();
  }
}

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

Deno.test("connectDirect: a proof declared larger than the client's cap is DIRECT_FAILED", async () => {
  await provingServer(encodeVarint(1024 + DIRECT_SEAL_OVERHEAD + 1), async (offer, accepted) => {
    await assert.rejects(
      connectDirect(HOST, offer, { ackMs: 5_000, limits: wireLimits(1024) }),
      (e) => assertWireError(e, "DIRECT_FAILED", /failed: frame of 1041 bytes exceeds the cap of 1040/),
    );
    assert.equal(await untilClosed(await accepted), "closed");
  });
});

Deno.test("connectDirect: a proof that is not empty is DIRECT_FAILED", async () => {
  const key = randomSecret();
  const server = new DirectCipher(decodeSecret(key, "key"), "server");
  await provingServer(lengthPrefixed(server.seal(new Uint8Array([1]))), async (offer, accepted) => {
    await assert.rejects(
      connectDirect(HOST, { ...offer, key }, { ackMs: 5_000 }),
      (e) => assertWireError(e, "DIRECT_FAILED", /did not prove the session key/),
    );
    assert.equal(await untilClosed(await accepted), "closed");
  });
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
    const client = await connectDirect(HOST, ticket.offer);
    const server = await ticket.attached;
    assert.ok(server);
    client.abort();
    server.abort();
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
    const client = await connectDirect(HOST, ticket.offer);
    const server = await ticket.attached;
    assert.ok(server);
    client.abort();
    server.abort();
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
