import assert from "node:assert/strict";
import { askReach, DialBackService } from "./dial_back.ts";
import { onInternet } from "./reachability.ts";
import { memoryFrameChannelPair } from "./frame_channel.ts";

Deno.test("dial-back: answers the host it saw, dials it back on the asked port and says whether that worked", async () => {
  const dialed: string[] = [];
  const svc = new DialBackService({
    dial: (host, port, peer) => {
      dialed.push(`${peer}@${host}:${port}`);
      return port === 4001 ? Promise.resolve() : Promise.reject(new Error("connection timed out"));
    },
    now: () => 0,
  });
  assert.deepEqual(await svc.answer({ peerId: "a", host: "198.18.0.1" }, undefined), {
    type: "reach",
    host: "198.18.0.1",
  });
  assert.deepEqual(dialed, []);
  assert.deepEqual(await svc.answer({ peerId: "a", host: "198.18.0.1" }, 4001), {
    type: "reach",
    host: "198.18.0.1",
    dialed: true,
  });
  const failed = await svc.answer({ peerId: "b", host: "198.18.0.2" }, 5000);
  assert.equal(failed.dialed, false);
  assert.equal(failed.reason, "could not connect back", "every failure answered alike");
  assert.deepEqual(dialed, ["a@198.18.0.1:4001", "b@198.18.0.2:5000"]);
});

Deno.test("dial-back: never over a relay, once per peer per 10 s, at most 4 at once", async () => {
  let now = 0;
  const gates: Array<() => void> = [];
  const svc = new DialBackService({
    dial: () => new Promise<void>((r) => gates.push(r)),
    now: () => now,
  });
  const relayed = await svc.answer({ peerId: "r", host: undefined }, 4001);
  assert.equal(relayed.host, undefined);
  assert.equal(relayed.dialed, undefined);
  assert.match(relayed.reason!, /relayed/);
  const running = [1, 2, 3, 4].map((i) => svc.answer({ peerId: `p${i}`, host: `198.18.0.${i}` }, 4001));
  assert.equal(svc.running, 4);
  const busy = await svc.answer({ peerId: "p5", host: "198.18.0.5" }, 4001);
  assert.equal(busy.reason, "busy");
  assert.equal(busy.dialed, undefined);
  gates.forEach((g) => g());
  assert.ok((await Promise.all(running)).every((r) => r.dialed === true));
  now = 5_000;
  const soon = await svc.answer({ peerId: "p1", host: "198.18.0.1" }, 4001);
  assert.equal(soon.reason, "asked again too soon");
  now = 10_000;
  const later = svc.answer({ peerId: "p1", host: "198.18.0.1" }, 4001);
  gates.at(-1)!();
  assert.equal((await later).dialed, true);
});

Deno.test("dial-back: the protocol over a stream; a wrong first frame gets nothing", async () => {
  const svc = new DialBackService({ dial: () => Promise.resolve(), now: () => 0 });
  const { a, b } = memoryFrameChannelPair();
  const served = svc.serve(b, { peerId: "x", host: "198.18.0.7" });
  const reply = await askReach(a, 4001);
  await served;
  assert.deepEqual(reply, { type: "reach", host: "198.18.0.7", dialed: true });

  const bad = memoryFrameChannelPair();
  const served2 = svc.serve(bad.b, { peerId: "y", host: "198.18.0.8" });
  await bad.a.write({ type: "table_request" });
  await served2;
  await assert.rejects(bad.a.read());
});

Deno.test("dial-back: an address off the internet is answered but never dialed (a node behind a tunnel)", async () => {
  const dialed: string[] = [];
  const svc = new DialBackService({
    dial: (host, port) => (dialed.push(`${host}:${port}`), Promise.resolve()),
    dialable: (host) => onInternet(host),
    now: () => 0,
  });
  for (const host of ["127.0.0.1", "10.0.0.5", "::1"]) {
    const r = await svc.answer({ peerId: host, host }, 6379);
    assert.deepEqual(r, { type: "reach", host, reason: "an address off the internet is not dialed back" });
  }
  assert.deepEqual(dialed, []);
  assert.equal((await svc.answer({ peerId: "p", host: "81.2.69.1" }, 4001)).dialed, true);
  assert.deepEqual(dialed, ["81.2.69.1:4001"]);
});
