import assert from "node:assert/strict";
import { multiaddr } from "@multiformats/multiaddr";
import { directHost, DirectPaths, withControl } from "./direct_paths.ts";
import { type FrameChannel, memoryFrameChannelPair } from "./frame_channel.ts";

const c = (name: string, value?: string) => (value === undefined ? { name } : { name, value });

Deno.test("directHost: the first IP or DNS component; none when relayed or unknown", () => {
  assert.equal(directHost([c("ip4", "10.0.0.7"), c("tcp", "31330"), c("p2p", "12D3KooW")]), "10.0.0.7");
  assert.equal(directHost([c("ip6", "::1"), c("tcp", "31330")]), "::1");
  assert.equal(directHost([c("dns4", "node.example.org"), c("tcp", "31330")]), "node.example.org");
  assert.equal(directHost([c("dns6", "v6.example.org"), c("tcp", "1")]), "v6.example.org");
  assert.equal(directHost([c("dns", "any.example.org"), c("tcp", "1")]), "any.example.org");
  // relayed: a p2p-circuit anywhere, even after a direct-looking relay address
  assert.equal(
    directHost([
      c("ip4", "1.2.3.4"),
      c("tcp", "4001"),
      c("p2p", "relay"),
      c("p2p-circuit"),
      c("p2p", "target"),
    ]),
    undefined,
  );
  assert.equal(directHost([c("p2p-circuit"), c("ip4", "1.2.3.4")]), undefined);
  // unknown first protocols, an empty address, a first component without a value
  assert.equal(directHost([c("unix", "/tmp/sock")]), undefined);
  assert.equal(directHost([c("memory", "x"), c("ip4", "1.2.3.4")]), undefined);
  assert.equal(directHost([c("tcp", "31330"), c("ip4", "1.2.3.4")]), undefined);
  assert.equal(directHost([]), undefined);
  assert.equal(directHost([c("ip4")]), undefined);
  // what a real multiaddr's components look like
  assert.equal(directHost(multiaddr("/ip4/192.168.1.20/tcp/31330").getComponents()), "192.168.1.20");
  assert.equal(directHost(multiaddr("/dns4/a.example/tcp/31330").getComponents()), "a.example");
  assert.equal(
    directHost(
      multiaddr(
        "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit",
      ).getComponents(),
    ),
    undefined,
  );
});

Deno.test("DirectPaths: disabled never tries; a failure backs off for backoffMs per host:port", () => {
  const off = new DirectPaths({ enabled: false });
  assert.equal(off.enabled, false);
  assert.equal(off.shouldTry("10.0.0.1", 31332), false);

  let now = 1_000_000;
  const paths = new DirectPaths({ backoffMs: 500, now: () => now });
  assert.equal(paths.enabled, true);
  assert.equal(paths.shouldTry("10.0.0.1", 31332), true);
  paths.failed("10.0.0.1", 31332);
  assert.equal(paths.shouldTry("10.0.0.1", 31332), false);
  // other ports and hosts are unaffected
  assert.equal(paths.shouldTry("10.0.0.1", 31333), true);
  assert.equal(paths.shouldTry("10.0.0.2", 31332), true);
  now += 499;
  assert.equal(paths.shouldTry("10.0.0.1", 31332), false, "still backing off 1 ms before the end");
  now += 1;
  assert.equal(paths.shouldTry("10.0.0.1", 31332), true, "tried again once backoffMs has passed");
  // and stays tryable until the next failure
  now += 1;
  assert.equal(paths.shouldTry("10.0.0.1", 31332), true);
  paths.failed("10.0.0.1", 31332);
  assert.equal(paths.shouldTry("10.0.0.1", 31332), false);

  // default backoff: 60 s
  let t = 0;
  const def = new DirectPaths({ now: () => t });
  def.failed("h", 1);
  t = 59_999;
  assert.equal(def.shouldTry("h", 1), false);
  t = 60_000;
  assert.equal(def.shouldTry("h", 1), true);
});

Deno.test("DirectPaths: the memory of failures is bounded (oldest forgotten first)", () => {
  const now = 5;
  const paths = new DirectPaths({ now: () => now });
  for (let i = 0; i <= 4096; i++) paths.failed("10.0.0.1", i);
  assert.equal(paths.shouldTry("10.0.0.1", 0), true, "the oldest entry was dropped");
  assert.equal(paths.shouldTry("10.0.0.1", 1), false);
  assert.equal(paths.shouldTry("10.0.0.1", 4096), false);
});

const step = {
  type: "step" as const,
  stepId: 3,
  hidden: { dtype: "f32" as const, shape: [1, 1, 2], data: new Float32Array([1, 2]) },
};

Deno.test("withControl: reads and writes go to the direct channel; close ends both", async () => {
  const direct = memoryFrameChannelPair();
  const control = memoryFrameChannelPair();
  const ch = withControl(direct.a, control.a);
  assert.equal(ch.writable, true);
  await ch.write(step);
  assert.deepEqual(await direct.b.read(), step);
  await direct.b.write({ type: "close" });
  assert.deepEqual(await ch.read(), { type: "close" });
  await ch.close();
  assert.equal(ch.writable, false);
  assert.equal(direct.a.writable, false);
  assert.equal(control.a.writable, false);
  // the control peer saw nothing but the clean end; the direct peer its clean end after the step
  assert.equal(await control.b.read(), null);
  assert.equal(await direct.b.read(), null);
});

Deno.test("withControl: close still ends the control stream when closing the direct one fails", async () => {
  const control = memoryFrameChannelPair();
  const failing: FrameChannel = {
    read: () => Promise.resolve(null),
    write: () => Promise.resolve(),
    close: () => Promise.reject(new Error("direct close failed")),
    abort: () => {},
    writable: true,
  };
  const ch = withControl(failing, control.a);
  await assert.rejects(ch.close(), /direct close failed/);
  assert.equal(control.a.writable, false);
  assert.equal(await control.b.read(), null);
});

Deno.test("withControl: abort aborts both channels with the error", async () => {
  const direct = memoryFrameChannelPair();
  const control = memoryFrameChannelPair();
  const ch = withControl(direct.a, control.a);
  const boom = new Error("client gave up");
  ch.abort(boom);
  assert.equal(ch.writable, false);
  assert.equal(control.a.writable, false);
  await assert.rejects(direct.b.read(), (e: unknown) => e === boom);
  await assert.rejects(control.b.read(), (e: unknown) => e === boom);
  await assert.rejects(ch.read(), (e: unknown) => e === boom);
});
