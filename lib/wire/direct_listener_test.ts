import assert from "node:assert/strict";
import net from "node:net";
import type { WireError } from "../errors.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";
import {
  abortAll,
  assertWireError,
  attach,
  hello,
  HOST,
  proveRaw,
  started,
  untilClosed,
  writeAll,
} from "../testing/mod.ts";
import { connectDirect, DIRECT_HELLO_BYTES, DIRECT_MAGIC } from "./direct_channel.ts";
import { lengthPrefixed } from "./length_prefix.ts";
import { randomSecret } from "./direct_cipher.ts";
import { acceptDirect, DirectListener, type DirectListenerOptions } from "./direct_listener.ts";
import { DIRECT_FRAME_BUDGET, FREE_PENDING_BYTES, PUNCHED_FRAME_BUDGET } from "./byte_budget.ts";

/** Runs `fn` with a started listener (`started(options)`), stopped afterwards. */
async function withListener(
  options: Partial<DirectListenerOptions>,
  fn: (l: DirectListener) => Promise<void>,
): Promise<void> {
  const l = await started(options);
  try {
    await fn(l);
  } finally {
    await l.stop();
  }
}

function connect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: HOST, port });
}

const directFailed = (e: unknown) =>
  assertWireError(e, "DIRECT_FAILED", /direct path to 127\.0\.0\.1:\d+ failed/);

Deno.test("direct listener: port and offer() before start() throw NOT_STARTED", async () => {
  const l = new DirectListener({ host: HOST, port: 0 });
  assert.throws(() => l.port, (e) => assertWireError(e, "NOT_STARTED", /not started/));
  assert.throws(() => l.offer(), (e) => assertWireError(e, "NOT_STARTED", /not running/));
  assert.equal(l.openOffers, 0);
  await l.stop(); // stopping a listener that never started is harmless
});

Deno.test("direct listener: start() binds a free port once; offers carry it and fresh secrets", async () => {
  await withListener({}, async (l) => {
    const port = l.port;
    assert.ok(port > 0 && port < 65536);
    await l.start(); // idempotent
    assert.equal(l.port, port);
    const a = l.offer();
    const b = l.offer();
    assert.equal(a.offer.port, port);
    assert.match(a.offer.ticket, /^[A-Za-z0-9_-]{43}$/);
    assert.match(a.offer.key, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a.offer.ticket, b.offer.ticket);
    assert.notEqual(a.offer.key, b.offer.key);
    assert.notEqual(a.offer.ticket, a.offer.key);
    assert.equal(l.openOffers, 2);
    a.cancel();
    b.cancel();
    assert.equal(l.openOffers, 0);
  });
});

Deno.test("direct listener: start() on a port in use is DIRECT_PORT_IN_USE naming host:port, hint --direct-port", async () => {
  const busy = Deno.listen({ hostname: HOST, port: 0 });
  const port = (busy.addr as Deno.NetAddr).port;
  try {
    const l = new DirectListener({ host: HOST, port });
    await assert.rejects(async () => await l.start(), (e) => {
      assertWireError(e, "DIRECT_PORT_IN_USE", new RegExp(`127\\.0\\.0\\.1:${port}\\b`));
      assert.match((e as WireError).hint, /--direct-port/);
      return true;
    });
    assert.throws(() => l.port, (e) => assertWireError(e, "NOT_STARTED", /not started/));
    await l.stop();
  } finally {
    busy.close();
  }
});

Deno.test("direct listener: an address it cannot bind is DIRECT_LISTEN_FAILED naming it", async () => {
  // 203.0.113.7 (TEST-NET-3) is not an address of this machine
  const l = new DirectListener({ host: "203.0.113.7", port: 0 });
  await assert.rejects(async () => await l.start(), (e) => {
    assertWireError(e, "DIRECT_LISTEN_FAILED", /203\.0\.113\.7:0/);
    assert.match((e as WireError).hint, /--direct-port|--host/);
    return true;
  });
  await l.stop();
});

Deno.test("direct listener: a ticket works once", async () => {
  await withListener({}, async (l) => {
    const t = l.offer();
    const ends = await attach(t);
    try {
      assert.equal(l.openOffers, 0, "the ticket is used up");
      await assert.rejects(connectDirect(HOST, t.offer), directFailed);
      // the first session is unaffected by the second attempt
      await ends.client.write({ type: "close" });
      assert.deepEqual(await ends.server.read(), { type: "close" });
    } finally {
      abortAll(ends);
    }
  });
});

Deno.test("direct listener: two offers attach two independent sessions", async () => {
  await withListener({}, async (l) => {
    const t1 = l.offer();
    const t2 = l.offer();
    // connect in the reverse order of the offers
    const c2 = await connectDirect(HOST, t2.offer);
    const c1 = await connectDirect(HOST, t1.offer);
    const [s1, s2] = await Promise.all([t1.attached, t2.attached]);
    assert.ok(s1 && s2);
    try {
      await c1.write({ type: "table_request", model: "one" });
      await c2.write({ type: "table_request", model: "two" });
      assert.deepEqual(await s2.read(), { type: "table_request", model: "two" });
      assert.deepEqual(await s1.read(), { type: "table_request", model: "one" });
    } finally {
      for (const ch of [c1, c2, s1, s2]) ch.abort();
    }
  });
});

Deno.test("direct listener: an unused offer resolves attached with null after ticketMs", async () => {
  await withListener({ ticketMs: 50 }, async (l) => {
    const t = l.offer();
    assert.equal(l.openOffers, 1);
    assert.equal(await t.attached, null);
    assert.equal(l.openOffers, 0);
    await assert.rejects(connectDirect(HOST, t.offer), directFailed);
  });
});

Deno.test("direct listener: cancel() resolves attached with null and the ticket stops working", async () => {
  await withListener({}, async (l) => {
    const t = l.offer();
    const other = l.offer();
    t.cancel();
    assert.equal(await t.attached, null);
    t.cancel(); // twice is harmless
    assert.equal(l.openOffers, 1, "only the cancelled offer is gone");
    await assert.rejects(connectDirect(HOST, t.offer), directFailed);
    // cancelling after use does not take the session away
    const client = await connectDirect(HOST, other.offer);
    other.cancel();
    const server = await other.attached;
    assert.ok(server);
    abortAll({ client, server });
  });
});

Deno.test("direct listener: a wrong magic is closed without an answer and leaves the offer usable", async () => {
  await withListener({}, async (l) => {
    const t = l.offer();
    const conn = await connect(l.port);
    try {
      await writeAll(conn, hello(t.offer.ticket, new TextEncoder().encode("PLMDIR02")));
      const buf = new Uint8Array(64);
      assert.equal(await conn.read(buf), null, "closed without a byte");
    } finally {
      conn.close();
    }
    assert.equal(l.openOffers, 1);
    const ok = await connect(l.port);
    try {
      await proveRaw(ok, t.offer);
      (await t.attached)?.abort();
    } finally {
      ok.close();
    }
  });
});

Deno.test("direct listener: a silent connection and a partial hello are closed after helloMs", async () => {
  await withListener({ helloMs: 100 }, async (l) => {
    const t = l.offer();
    const silent = await connect(l.port);
    const partial = await connect(l.port);
    try {
      await writeAll(partial, hello(t.offer.ticket).subarray(0, DIRECT_HELLO_BYTES - 1));
      assert.equal(await untilClosed(silent), "closed");
      assert.equal(await untilClosed(partial), "closed");
    } finally {
      silent.close();
      partial.close();
    }
    // the offer was not consumed by the partial hello
    assert.equal(l.openOffers, 1);
    t.cancel();
  });
});

Deno.test("direct listener: a client that hangs up mid-hello is dropped", async () => {
  await withListener({}, async (l) => {
    const t = l.offer();
    const conn = await connect(l.port);
    await writeAll(conn, DIRECT_MAGIC);
    conn.close();
    // the listener keeps serving: the offer still attaches
    abortAll(await attach(t));
  });
});

Deno.test("direct listener: connections beyond maxPending are closed at once", async () => {
  // helloMs is long: anything closed while the first two are still open was closed by the cap
  const l = await started({ maxPending: 2, helloMs: 60_000 });
  const conns: Deno.TcpConn[] = [];
  try {
    const t1 = l.offer();
    const t2 = l.offer();
    conns.push(await connect(l.port), await connect(l.port), await connect(l.port));
    const [first, second, third] = conns;
    assert.equal(await untilClosed(third), "closed");
    // the first two still wait for their hello: the first one can still authenticate
    await proveRaw(first, t1.offer);
    (await t1.attached)?.abort();
    // which frees a slot for a new connection
    const fourth = await connect(l.port);
    conns.push(fourth);
    await proveRaw(fourth, t2.offer);
    (await t2.attached)?.abort();
    // stop() closes the one still waiting
    await l.stop();
    assert.equal(await untilClosed(second), "closed");
  } finally {
    for (const c of conns) c.close();
    await l.stop();
  }
});

Deno.test("direct listener: stop() resolves open offers with null, closes waiting connections, keeps sessions", async () => {
  const l = await started();
  const waiting = await connect(l.port);
  try {
    const open = l.offer();
    const { client, server } = await attach(l.offer());
    try {
      await l.stop();
      assert.equal(await open.attached, null);
      assert.equal(l.openOffers, 0);
      assert.equal(await untilClosed(waiting), "closed");
      assert.throws(() => l.offer(), (e) => assertWireError(e, "NOT_STARTED", /not running/));
      await l.stop(); // twice is harmless
      // an attached session belongs to its owner and outlives the listener
      await client.write({ type: "close" });
      assert.deepEqual(await server.read(), { type: "close" });
      await server.write({ type: "info_request" });
      assert.deepEqual(await client.read(), { type: "info_request" });
    } finally {
      abortAll({ client, server });
    }
    // nothing listens on the port any more
    const port = open.offer.port;
    await assert.rejects(
      connectDirect(HOST, { port, ticket: randomSecret(), key: randomSecret() }),
      directFailed,
    );
  } finally {
    waiting.close();
    await l.stop();
  }
});

/** Whether this machine can listen on `::` and reach it at `::1` (IPv6 loopback). */
function hasIpv6Loopback(): boolean {
  try {
    const l = Deno.listen({ hostname: "::1", port: 0 });
    l.close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "direct listener: idle connections from one address cannot lock out clients from another",
  ignore: !hasIpv6Loopback(),
  fn: async () => {
    // a dual-stack listener: 127.0.0.1 and ::1 are two source addresses of one machine
    const l = new DirectListener({ host: "::", port: 0, helloMs: 60_000 });
    await l.start();
    const idle: Deno.TcpConn[] = [];
    try {
      // an attacker opens 64 connections (the default cap of waiting connections) and says nothing
      for (let i = 0; i < 64; i++) idle.push(await Deno.connect({ hostname: "127.0.0.1", port: l.port }));
      // a client from another address still gets its session
      const ticket = l.offer();
      const client = await connectDirect("::1", ticket.offer, { plain: false });
      const server = await ticket.attached;
      assert.ok(server, "the client from ::1 attached");
      abortAll({ client, server });
      // the attacker's address holds at most maxPendingPerHost (default 8) waiting connections:
      // the rest were closed at once, the first 8 still wait
      const closed = await Promise.all(idle.slice(8).map(untilClosed));
      assert.equal(closed.length, 56);
      const ticket2 = l.offer();
      await proveRaw(idle[0], ticket2.offer);
      (await ticket2.attached)?.abort();
    } finally {
      for (const c of idle) c.close();
      await l.stop();
    }
  },
});

Deno.test("direct listener: maxPendingPerHost caps waiting connections per source address; a slot frees when one leaves", async () => {
  const l = await started({ maxPendingPerHost: 2, helloMs: 60_000 });
  const conns: Deno.TcpConn[] = [];
  try {
    conns.push(await connect(l.port), await connect(l.port), await connect(l.port));
    assert.equal(await untilClosed(conns[2]), "closed", "the third from 127.0.0.1 is closed at once");
    assert.equal(l.pendingConnections, 2);
    conns[0].close();
    await waitFor(() => l.pendingConnections === 1, { what: "the listener saw the first one leave" });
    const t = l.offer();
    const next = await connect(l.port);
    conns.push(next);
    await proveRaw(next, t.offer);
    (await t.attached)?.abort();
  } finally {
    for (const c of conns.slice(1)) c.close();
    await l.stop();
  }
});

Deno.test("direct listener: offers say hashed; a hello with the ticket or with its hash attaches, once", async () => {
  await withListener({}, async (l) => {
    for (const hashTicket of [true, false]) {
      const t = l.offer();
      assert.equal(t.offer.hashed, true);
      const client = await connectDirect(HOST, t.offer, { hashTicket });
      const server = await t.attached;
      assert.ok(server);
      try {
        await client.write({ type: "close" });
        assert.deepEqual(await server.read(), { type: "close" });
        assert.equal(l.openOffers, 0);
        // used up: neither form names it again
        await assert.rejects(connectDirect(HOST, t.offer, { hashTicket: true }), directFailed);
        await assert.rejects(connectDirect(HOST, t.offer, { hashTicket: false }), directFailed);
      } finally {
        client.abort();
        server.abort();
      }
    }
    // a hashed hello for a ticket never offered is refused
    await assert.rejects(
      connectDirect(HOST, { port: l.port, ticket: randomSecret(), key: randomSecret(), hashed: true }),
      directFailed,
    );
  });
});

Deno.test("direct listener: with every slot held by idle connections, a new source still gets in (the largest source's oldest goes)", async () => {
  const l = await started({ maxPending: 4, maxPendingPerHost: 2, helloMs: 60_000 });
  const idle: net.Socket[] = [];
  const closed: number[] = [];
  try {
    for (const from of ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"]) {
      const s = net.connect({ host: HOST, port: l.port, localAddress: from });
      await new Promise((r) => s.once("connect", r));
      const n = idle.push(s) - 1;
      s.on("close", () => closed.push(n)).on("error", () => {});
    }
    await waitFor(() => l.pendingConnections === 4, { what: "four idle connections waiting" });
    // a client from elsewhere: before, closed at once (every slot taken) — now it attaches
    const t = l.offer();
    const conn = await connect(l.port);
    await proveRaw(conn, t.offer);
    (await t.attached)?.abort();
    conn.close();
    await waitFor(() => closed.length === 1, { what: "one idle connection dropped" });
    assert.equal(closed[0], 0, "the oldest of a source holding the most");
    assert.equal(l.pendingConnections, 3);
  } finally {
    for (const s of idle) s.destroy();
    await l.stop();
  }
});

Deno.test("direct listener: rebind() moves to another port; sessions attached before keep working", async () => {
  await withListener({}, async (l) => {
    const before = l.offer();
    const first = await attach(before);
    const oldPort = l.port;
    const free = Deno.listen({ hostname: HOST, port: 0 });
    const target = (free.addr as Deno.NetAddr).port;
    free.close();
    try {
      assert.equal(await l.rebind(target), target);
      assert.equal(l.port, target);
      // the session attached on the old port is untouched
      await first.client.write({ type: "close" });
      assert.deepEqual(await first.server.read(), { type: "close" });
      // new offers name the new port, and it attaches there; the old port is closed
      const t = l.offer();
      assert.equal(t.offer.port, target);
      const ends = await attach(t);
      abortAll(ends);
      await assert.rejects(connect(oldPort), Deno.errors.ConnectionRefused);
      // a port in use is refused as start() refuses it, and the listener stays where it is
      const busy = Deno.listen({ hostname: HOST, port: 0 });
      try {
        await assert.rejects(
          l.rebind((busy.addr as Deno.NetAddr).port),
          (e: unknown) => assertWireError(e, "DIRECT_PORT_IN_USE", /cannot listen for direct paths on/),
        );
        assert.equal(l.port, target);
        abortAll(await attach(l.offer()));
      } finally {
        busy.close();
      }
    } finally {
      abortAll(first);
    }
  });
});

Deno.test("direct listener: rebind() against stop() or another rebind() leaves nothing listening after stop", async () => {
  const freePort = () => {
    const l = Deno.listen({ hostname: HOST, port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    return port;
  };
  const listening = (port: number) => connect(port).then((c) => (c.close(), true), () => false);
  // stop() while a rebind waits for the old accept loop
  const a = await started({});
  const target = freePort();
  const moving = a.rebind(target).catch((e) => e);
  await a.stop();
  const r = await moving;
  assert.ok(r instanceof Error || typeof r === "number");
  assert.equal(await listening(target), false, "before: the new port kept accepting after stop()");
  // two rebinds at once take turns: the last one wins, the first one's port is closed
  const b = await started({});
  const [p1, p2] = [freePort(), freePort()];
  assert.deepEqual(await Promise.all([b.rebind(p1), b.rebind(p2)]), [p1, p2]);
  assert.equal(b.port, p2);
  assert.equal(await listening(p1), false, "before: the first rebind's port stayed open");
  await b.stop();
  assert.equal(await listening(p2), false);
});

Deno.test("acceptDirect: a punched path's frames come out of the main thread's punched budget, not the Worker's", async () => {
  const key = HOST;
  const [direct0, punched0] = [DIRECT_FRAME_BUDGET.held(key), PUNCHED_FRAME_BUDGET.held(key)];
  // together the two isolates' budgets are what one server may hold (before: 1 GiB each)
  assert.ok(DIRECT_FRAME_BUDGET.max + PUNCHED_FRAME_BUDGET.max <= 1024 * 1024 * 1024);
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const secrets = { ticket: randomSecret(), key: randomSecret() };
  try {
    const accepting = listener.accept().then((conn) => acceptDirect(conn, secrets));
    const conn = await Deno.connect({ hostname: HOST, port });
    const cipher = await proveRaw(conn, { port, ...secrets });
    const server = await accepting;
    try {
      // half of a 4 MiB frame: what is beyond the free 16 KiB is held while the rest is awaited
      const reading = server.read().catch(() => null);
      const frame = lengthPrefixed(cipher.seal(new Uint8Array(4 << 20)));
      await writeAll(conn, frame.subarray(0, 2 << 20));
      await waitFor(() => PUNCHED_FRAME_BUDGET.held(key) - punched0 >= (2 << 20) - FREE_PENDING_BYTES - 64, {
        what: "held in the punched budget",
      });
      assert.equal(
        DIRECT_FRAME_BUDGET.held(key),
        direct0,
        "the Worker's budget is not this isolate's to use",
      );
      conn.close();
      await reading;
    } finally {
      server.abort();
    }
    await waitFor(() => PUNCHED_FRAME_BUDGET.held(key) === punched0, { what: "given back when dropped" });
  } finally {
    listener.close();
  }
});
