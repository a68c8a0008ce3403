import assert from "node:assert/strict";
import { PlumiseError } from "../errors.ts";
import { punchPort, punchTcp } from "./hole_punch.ts";

Deno.test({
  name:
    "hole punch: connects from its own port, retrying while the other side refuses; the socket reads and writes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // (simultaneous open itself needs packets in flight, which loopback never has: it is tested
    // through real NATs in tests/nat_punch_test.ts; here the other side opens its port late)
    const pa = punchPort(), pb = punchPort();
    assert.notEqual(pa, pb);
    let listener: Deno.TcpListener | undefined;
    const late = new Promise<Deno.TcpConn>((resolve) =>
      setTimeout(() => {
        listener = Deno.listen({ hostname: "127.0.0.1", port: pb });
        resolve(listener.accept());
      }, 150)
    );
    const a = await punchTcp(pa, { host: "127.0.0.1", port: pb }, { retryMs: 20 });
    const b = await late;
    try {
      assert.equal((a.localAddr as Deno.NetAddr).port, pa);
      assert.equal((b.remoteAddr as Deno.NetAddr).port, pa, "the other side sees the punched port");
      assert.equal((a.remoteAddr as Deno.NetAddr).port, pb);
      await a.write(new TextEncoder().encode("ping"));
      const buf = new Uint8Array(16);
      const n = await b.read(buf);
      assert.equal(new TextDecoder().decode(buf.subarray(0, n!)), "ping");
      await b.write(new Uint8Array([1, 2, 3]));
      assert.equal(await a.read(buf), 3);
      assert.deepEqual([...buf.subarray(0, 3)], [1, 2, 3]);
      // the other side's end reads as null
      b.close();
      assert.equal(await a.read(buf), null);
    } finally {
      a.close();
      listener?.close();
    }
  },
});

Deno.test({
  name: "hole punch: nobody connecting back is PUNCH_FAILED after the timeout; an abort ends it at once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const port = punchPort(), closed = punchPort();
    const err = await punchTcp(port, { host: "127.0.0.1", port: closed }, { timeoutMs: 300, retryMs: 20 })
      .then(
        () => undefined,
        (e) => e,
      );
    assert.ok(err instanceof PlumiseError && err.code === "PUNCH_FAILED", String(err));
    assert.match(err.hint!, /relayed/);
    const ac = new AbortController();
    const p = punchTcp(punchPort(), { host: "127.0.0.1", port: closed }, {
      signal: ac.signal,
      timeoutMs: 10_000,
    });
    ac.abort(new Error("gave up"));
    await assert.rejects(p, /gave up/);
  },
});

Deno.test({
  name: "hole punch: a target that keeps refusing sees attempts further and further apart (a dozen in 3 s)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    let attempts = 0;
    const t0 = Date.now();
    await assert.rejects(
      punchTcp(punchPort(), { host: "127.0.0.1", port: punchPort() }, {
        timeoutMs: 3000,
        onAttempt: () => attempts++,
      }),
      (e) => e instanceof PlumiseError && e.code === "PUNCH_FAILED",
    );
    // 25, 50, 100, 200, then every 400 ms: 11 attempts in 3 s (one every 25 ms made 107)
    assert.ok(attempts >= 5 && attempts <= 12, `${attempts} attempts in ${Date.now() - t0} ms`);
  },
});
