import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { addressScope, linkDirect, linkTarget } from "./link_target.ts";
import { encodeSecret, randomSecret, ticketHash } from "./direct_cipher.ts";
import { DIRECT_HELLO_BYTES } from "./direct_channel.ts";

/** [spelling, scope (undefined: not an address literal), the address connected to]. */
const SPELLINGS: Array<[string, string | undefined, string?]> = [
  // IPv4 loopback and "this network" (0.0.0.0 reaches this machine)
  ["127.0.0.1", "loopback", "127.0.0.1"],
  ["127.200.1.9", "loopback", "127.200.1.9"],
  ["0.0.0.0", "loopback", "0.0.0.0"],
  ["0.1.2.3", "loopback", "0.1.2.3"],
  // IPv6 loopback and unspecified, every spelling
  ["::1", "loopback", "::1"],
  ["[::1]", "loopback", "::1"],
  ["0:0:0:0:0:0:0:1", "loopback", "::1"],
  ["0::1", "loopback", "::1"],
  ["0000:0000:0000:0000:0000:0000:0000:0001", "loopback", "::1"],
  ["::0:1", "loopback", "::1"],
  ["::", "loopback", "::"],
  ["0:0:0:0:0:0:0:0", "loopback", "::"],
  ["[::]", "loopback", "::"],
  // IPv4-mapped, -compatible, -translated and NAT64 forms become the IPv4 address
  ["::ffff:127.0.0.1", "loopback", "127.0.0.1"],
  ["::ffff:7f00:1", "loopback", "127.0.0.1"],
  ["::FFFF:7F00:0001", "loopback", "127.0.0.1"],
  ["0:0:0:0:0:ffff:7f00:1", "loopback", "127.0.0.1"],
  ["[::ffff:127.0.0.1]", "loopback", "127.0.0.1"],
  ["::127.0.0.1", "loopback", "127.0.0.1"],
  ["::7f00:1", "loopback", "127.0.0.1"],
  ["::ffff:0:7f00:1", "loopback", "127.0.0.1"],
  ["64:ff9b::7f00:1", "loopback", "127.0.0.1"],
  ["64:ff9b::127.0.0.1", "loopback", "127.0.0.1"],
  ["::ffff:0.0.0.0", "loopback", "0.0.0.0"],
  ["::ffff:a00:1", "private", "10.0.0.1"],
  ["::ffff:10.0.0.1", "private", "10.0.0.1"],
  ["::ffff:a9fe:a9fe", "private", "169.254.169.254"],
  ["64:ff9b::a9fe:a9fe", "private", "169.254.169.254"],
  ["::ffff:808:808", "public", "8.8.8.8"],
  ["64:ff9b::8.8.8.8", "public", "8.8.8.8"],
  // private, link-local, CGNAT, documentation
  ["10.1.2.3", "private", "10.1.2.3"],
  ["172.16.0.1", "private", "172.16.0.1"],
  ["172.31.255.255", "private", "172.31.255.255"],
  ["192.168.1.1", "private", "192.168.1.1"],
  ["169.254.169.254", "private", "169.254.169.254"],
  ["100.64.0.1", "private", "100.64.0.1"],
  ["100.127.255.254", "private", "100.127.255.254"],
  ["198.18.0.1", "private", "198.18.0.1"],
  ["192.0.2.1", "private", "192.0.2.1"],
  ["fd00::1", "private", "fd00::1"],
  ["FC00::1", "private", "fc00::1"],
  ["fe80::1", "private", "fe80::1"],
  ["fe80::1%eth0", "private", "fe80::1%eth0"],
  ["febf:ffff::1", "private", "febf:ffff::1"],
  ["fec0::1", "private", "fec0::1"],
  ["64:ff9b:1::a00:1", "private", "64:ff9b:1::a00:1"],
  ["2001:db8::1", "private", "2001:db8::1"],
  ["2001:0:4136:e378:8000:63bf:3fff:fdd2", "private", "2001:0:4136:e378:8000:63bf:3fff:fdd2"],
  ["2002:7f00:1::1", "loopback", "2002:7f00:1::1"],
  ["2002:a00:1::1", "private", "2002:a00:1::1"],
  // multicast, broadcast, reserved, unallocated: no unicast host
  ["224.0.0.1", "none", "224.0.0.1"],
  ["239.255.255.250", "none", "239.255.255.250"],
  ["255.255.255.255", "none", "255.255.255.255"],
  ["240.0.0.1", "none", "240.0.0.1"],
  ["::ffff:224.0.0.1", "none", "224.0.0.1"],
  ["ff02::1", "none", "ff02::1"],
  ["ff05::1:3", "none", "ff05::1:3"],
  ["100::1", "none", "100::1"],
  ["4000::1", "none", "4000::1"],
  // public
  ["100.63.255.255", "public", "100.63.255.255"],
  ["100.128.0.1", "public", "100.128.0.1"],
  ["172.32.0.1", "public", "172.32.0.1"],
  ["8.8.8.8", "public", "8.8.8.8"],
  ["2606:4700:4700::1111", "public", "2606:4700:4700::1111"],
  ["2a00:1450:4001:0810:0000:0000:0000:200e", "public", "2a00:1450:4001:810::200e"],
  ["2002:808:808::1", "public", "2002:808:808::1"],
  // not address literals (shorthand IPv4 forms that inet_aton reads as 127.0.0.1 included)
  ["example.org", undefined],
  ["300.1.1.1", undefined],
  ["127.1", undefined],
  ["2130706433", undefined],
  ["0x7f000001", undefined],
  ["0177.0.0.1", undefined],
  ["127.0.0.01", undefined],
  ["1::2::3", undefined],
  ["1:2:3:4:5:6:7:8:9", undefined],
  ["1::2:3:4:5:6:7:8", undefined],
  ["1.2.3.4::", undefined],
  ["::1.2.3", undefined],
  ["12345::1", undefined],
  ["::g", undefined],
  ["fe80::1%", undefined],
];

Deno.test("addressScope: a table of spellings (every IPv6 form, IPv4 inside IPv6, special ranges, shorthands)", () => {
  assert.ok(SPELLINGS.length >= 40);
  const wrong = SPELLINGS.filter(([host, want]) => addressScope(host) !== want)
    .map(([host, want]) => `${host}: ${addressScope(host)} (want ${want})`);
  assert.deepEqual(wrong, []);
});

Deno.test("linkTarget: a client on this machine may name any unicast host, which is connected to as normalised", async () => {
  const none = () => Promise.resolve([] as string[]);
  const wrong: string[] = [];
  for (const [host, scope, connectTo] of SPELLINGS) {
    if (scope === undefined || scope === "none") continue;
    const got = await linkTarget(host, "127.0.0.1", none).catch((e) => `refused: ${e}`);
    if (got !== connectTo) wrong.push(`${host}: ${got} (want ${connectTo})`);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("linkTarget: a client from the internet may name public hosts only, in any spelling", async () => {
  const none = () => Promise.resolve([] as string[]);
  const wrong: string[] = [];
  for (const [host, scope] of SPELLINGS) {
    const got = await linkTarget(host, "1.1.1.1", none).then(
      () => "linked",
      (e) => e instanceof WireError && e.code === "LINK_REFUSED" ? "refused" : `${e}`,
    );
    const want = scope === "public" ? "linked" : "refused";
    if (got !== want) wrong.push(`${host}: ${got} (want ${want})`);
  }
  assert.deepEqual(wrong, []);
});

Deno.test("linkTarget: no more internal than the client; names resolved and each answer checked", async () => {
  const asked: string[] = [];
  const dns = (table: Record<string, string[]>) => (name: string) => {
    asked.push(name);
    // a resolver that reads shorthand IPv4 forms the inet_aton way
    return Promise.resolve(table[name] ?? (/^[0-9x.]+$/.test(name) ? ["1.2.3.4"] : []));
  };
  const resolve = dns({
    "next.example": ["1.2.3.4"],
    "inside.example": ["10.0.0.5"],
    "mapped.example": ["::ffff:7f00:1"],
    "rebind.example": ["127.0.0.1", "1.2.3.4"],
    "localhost": ["127.0.0.1"],
  });
  // a client on this machine may name anything; on a LAN, LAN or public; from the internet, public only
  assert.equal(await linkTarget("127.0.0.1", "127.0.0.1", resolve), "127.0.0.1");
  assert.equal(await linkTarget("10.0.0.5", "192.168.1.2", resolve), "10.0.0.5");
  assert.equal(await linkTarget("next.example", "1.1.1.1", resolve), "1.2.3.4");
  assert.equal(await linkTarget("8.8.8.8", undefined, resolve), "8.8.8.8");
  // a name with an internal answer among public ones: the public one is connected to
  assert.equal(await linkTarget("rebind.example", "1.1.1.1", resolve), "1.2.3.4");
  // a client whose own address is written as IPv4-mapped is as internal as the IPv4 address
  assert.equal(await linkTarget("10.0.0.5", "::ffff:10.0.0.9", resolve), "10.0.0.5");
  for (
    const [host, from] of [
      ["127.0.0.1", "1.1.1.1"],
      ["169.254.169.254", "1.1.1.1"],
      ["inside.example", "1.1.1.1"],
      ["mapped.example", "1.1.1.1"],
      ["localhost", "1.1.1.1"],
      ["127.0.0.1", "10.0.0.9"],
      ["0.0.0.0", "10.0.0.9"],
      ["::", "10.0.0.9"],
      ["10.0.0.5", undefined],
      ["nowhere.example", "127.0.0.1"],
      ["224.0.0.1", "127.0.0.1"],
      ["255.255.255.255", "127.0.0.1"],
      // shorthand IPv4 forms are neither addresses nor names: never handed to a resolver
      ["127.1", "127.0.0.1"],
      ["2130706433", "127.0.0.1"],
      ["0x7f.0.0.1", "127.0.0.1"],
    ]
  ) {
    await assert.rejects(
      linkTarget(host!, from, resolve),
      (e) => e instanceof WireError && e.code === "LINK_REFUSED" && e.hint.length > 0,
      `${host} from ${from}`,
    );
  }
  assert.deepEqual(asked.filter((n) => /^[0-9x.]+$/.test(n)), [], "shorthand forms never reach the resolver");
});

/** A clock that moves only when told: by `sleep`, or by the work a fake connector pretends to do. */
function fakeClock() {
  let t = 1_000;
  const slept: number[] = [];
  return {
    slept,
    advance: (ms: number) => (t += ms),
    clock: {
      now: () => t,
      sleep: (ms: number) => {
        slept.push(ms);
        t += ms;
        return Promise.resolve();
      },
    },
  };
}

const OFFER = { port: 4000, ticket: "A".repeat(43), key: "A".repeat(43) };

Deno.test("linkDirect: refused, unresolved, closed, filtered or foreign — one message, answered at the same moment", async () => {
  const outcomes: Array<{ what: string; message: string; at: number }> = [];
  const attempts: Array<[string, string, number | "never"]> = [
    // [what, host, ms the connector takes before failing ("never": not reached)]
    ["internal target refused", "127.0.0.1", "never"],
    ["link-local target refused", "169.254.169.254", "never"],
    ["mapped loopback refused", "::ffff:7f00:1", "never"],
    ["shorthand refused", "2130706433", "never"],
    ["name that does not resolve", "nowhere.example", "never"],
    ["closed port (reset at once)", "1.2.3.4", 1],
    ["open port that closes", "1.2.3.4", 30],
    ["open port that stays silent", "1.2.3.4", 1_999],
    ["port that answers no proof", "1.2.3.4", 700],
  ];
  for (const [what, host, takes] of attempts) {
    const f = fakeClock();
    const t0 = f.clock.now();
    const err = await linkDirect({ host, ...OFFER }, {
      clientHost: "5.6.7.8",
      clock: f.clock,
      failAtMs: 2_000,
      resolve: () => Promise.resolve([]),
      connect: (ip) => {
        assert.notEqual(takes, "never", `${what}: not connected to ${ip}`);
        f.advance(takes as number);
        return Promise.reject(new WireError("DIRECT_FAILED", `some reason after ${takes} ms`));
      },
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof WireError && err.code === "LINK_REFUSED", `${what}: ${err}`);
    outcomes.push({ what, message: err.message, at: f.clock.now() - t0 });
  }
  for (const o of outcomes) {
    assert.equal(o.message, `could not link to ${attempts.find((a) => a[0] === o.what)![1]}:4000`, o.what);
    assert.equal(o.at, 2_000, `${o.what} is answered 2000 ms after the request (clock time)`);
  }
});

Deno.test("linkDirect: real loopback failures (closed, silent, closing, foreign) give the same message", async () => {
  const closedPort = (() => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const p = (l.addr as Deno.NetAddr).port;
    l.close();
    return p;
  })();
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closing = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const foreign = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const serve = async (l: Deno.Listener, fn: (c: Deno.Conn) => Promise<void>) => {
    for await (const c of l) await fn(c).catch(() => {});
  };
  const loops = [
    serve(silent, (c) => Promise.resolve(void held.push(c))),
    serve(closing, (c) => Promise.resolve(c.close())),
    serve(foreign, async (c) => {
      await c.write(new TextEncoder().encode("SSH-2.0-OpenSSH_9.6\r\n"));
      held.push(c);
    }),
  ];
  const port = (l: Deno.Listener) => (l.addr as Deno.NetAddr).port;
  try {
    const messages = new Set<string>();
    for (const p of [closedPort, port(silent), port(closing), port(foreign)]) {
      const err = await linkDirect({ host: "127.0.0.1", ...OFFER, port: p }, {
        clientHost: "127.0.0.1",
        failAtMs: 300,
      }).then(() => undefined, (e) => e);
      assert.ok(err instanceof WireError && err.code === "LINK_REFUSED", `port ${p}: ${err}`);
      messages.add(err.message.replace(`:${p}`, ":PORT"));
    }
    assert.deepEqual([...messages], ["could not link to 127.0.0.1:PORT"]);
  } finally {
    for (const l of [silent, closing, foreign]) l.close();
    for (const c of held) c.close();
    await Promise.allSettled(loops);
  }
});

Deno.test("linkDirect: the session ending aborts the attempt at once (no padding)", async () => {
  const f = fakeClock();
  const stop = new AbortController();
  const reason = new Error("session ended");
  const err = await linkDirect({ host: "1.2.3.4", ...OFFER }, {
    clock: f.clock,
    signal: stop.signal,
    connect: () => {
      stop.abort(reason);
      return Promise.reject(reason);
    },
  }).then(() => undefined, (e) => e);
  assert.equal(err, reason);
  assert.deepEqual(f.slept, []);
});

Deno.test("linkDirect: the hello a server sends for a client names the ticket's hash, never the client's bytes", async () => {
  const victim = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const got = (async () => {
    const conn = await victim.accept();
    const buf = new Uint8Array(DIRECT_HELLO_BYTES);
    let n = 0;
    while (n < buf.length) {
      const r = await conn.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    conn.close();
    return buf.subarray(0, n);
  })();
  // a "ticket" that is a command for a plain-text service on the target
  const chosen = new TextEncoder().encode("\r\nFLUSHALL\r\nQUIT\r\n".padEnd(32, " "));
  await assert.rejects(
    linkDirect(
      {
        host: "127.0.0.1",
        port: (victim.addr as Deno.NetAddr).port,
        ticket: encodeSecret(chosen),
        key: randomSecret(),
      },
      { clientHost: "127.0.0.1", failAtMs: 300 },
    ),
    (e) => e instanceof WireError && e.code === "LINK_REFUSED",
  );
  const hello = await got;
  victim.close();
  assert.match(new TextDecoder().decode(hello.subarray(0, 8)), /^PLMDIRH[12]$/); // sealed or plain (loopback)
  assert.deepEqual(hello.subarray(8), ticketHash(chosen));
  assert.ok(!new TextDecoder().decode(hello).includes("FLUSHALL"));
});

Deno.test("linkDirect: a port below 1024 is refused like any other failure", async () => {
  let connects = 0;
  await assert.rejects(
    linkDirect({ host: "127.0.0.1", port: 25, ticket: randomSecret(), key: randomSecret() }, {
      clientHost: "127.0.0.1",
      failAtMs: 50,
      connect: () => (connects++, Promise.reject(new Error("not called"))),
    }),
    (e) =>
      e instanceof WireError && e.code === "LINK_REFUSED" && e.message === "could not link to 127.0.0.1:25",
  );
  assert.equal(connects, 0);
});
