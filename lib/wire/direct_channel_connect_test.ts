import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import {
  abortAll,
  assertWireError,
  attach,
  bitExactTensor,
  connected,
  hello,
  HOST,
  listening,
  readExactly,
  untilClosed,
  writeAll,
} from "../testing/mod.ts";
import {
  connectDirect,
  DIRECT_HELLO_BYTES,
  DIRECT_MAGIC,
  DIRECT_MAGIC_PLAIN,
  DIRECT_PLAIN_CONFIRM,
  type DirectFrameChannel,
  loopbackConn,
  sealedFrame,
} from "./direct_channel.ts";
import { decodeSecret, DIRECT_SEAL_OVERHEAD, DirectCipher, randomSecret } from "./direct_cipher.ts";
import { encodeVarint, lengthPrefixed } from "./length_prefix.ts";
import type { DirectOffer, StepMessage } from "./protocol_messages.ts";
import { tensor } from "./tensor_codec.ts";
import { encodeFrame } from "./frame_codec.ts";
import { wireLimits } from "./wire_limits.ts";
import { freePort } from "../../tests/helpers/free_port.ts";

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
    const x = bitExactTensor(1, 3, 8);
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
  const x = bitExactTensor(1, 1, 8);
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
