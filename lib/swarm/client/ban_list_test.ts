import assert from "node:assert/strict";
import { BanList } from "./ban_list.ts";
import { SwarmError } from "../../errors.ts";

Deno.test("BanList bans with exponential backoff, capped, reset by success", () => {
  let now = 0;
  const bans = new BanList({ now: () => now, maxMs: 100_000 });
  assert.equal(bans.isBanned("p"), false);
  assert.equal(bans.ban("p"), 15_000);
  assert.equal(bans.isBanned("p"), true);
  now = 15_000;
  assert.equal(bans.isBanned("p"), false, "the ban expires");
  assert.equal(bans.ban("p"), 30_000, "consecutive failures double the ban");
  now += 30_000;
  assert.equal(bans.ban("p"), 60_000);
  now += 60_000;
  assert.equal(bans.ban("p"), 100_000, "capped");
  assert.equal(bans.failures("p"), 4);
  assert.deepEqual(bans.banned(), ["p"]);
  bans.succeed("p");
  assert.equal(bans.isBanned("p"), false);
  assert.equal(bans.ban("p"), 15_000, "a success resets the backoff");
});

Deno.test("BanList: failures while a peer is banned are one outage and do not lengthen its ban", () => {
  let now = 0;
  const bans = new BanList({ now: () => now });
  // eight sessions cut by one broken connection, a few milliseconds apart
  for (let i = 0; i < 8; i++, now += 2) assert.equal(bans.ban("p"), 15_000 - 2 * i);
  assert.equal(bans.failures("p"), 1);
  now = 15_000;
  assert.equal(bans.isBanned("p"), false, "the one ban ends on time");
  assert.equal(bans.ban("p"), 30_000, "a failure after it is the next outage");
  assert.equal(bans.failures("p"), 2);
  now += 10_000;
  assert.equal(bans.ban("p"), 20_000);
  assert.ok(bans.isSuspect("p"));
  now += 10 * 60_000 - 1;
  assert.ok(bans.isSuspect("p"), "its last failure during the ban counts for suspicion");
});

Deno.test("BanList: a peer stays suspect for suspectMs after its last failure, or until a success", () => {
  let now = 0;
  const bans = new BanList({ now: () => now, suspectMs: 60_000 });
  assert.equal(bans.isSuspect("p"), false);
  bans.ban("p"); // banned until 15 s
  assert.equal(bans.isSuspect("p"), true, "a banned peer is suspect");
  now = 20_000;
  assert.equal(bans.isBanned("p"), false);
  assert.equal(bans.isSuspect("p"), true, "the ban ended, the suspicion not yet");
  now = 60_000;
  assert.equal(bans.isSuspect("p"), false, "suspectMs after the failure");
  bans.ban("p"); // second failure: banned 30 s, suspect until 120 s
  now = 100_000;
  assert.equal(bans.isBanned("p"), false);
  assert.equal(bans.isSuspect("p"), true);
  bans.succeed("p");
  assert.equal(bans.isSuspect("p"), false, "a success clears it");
  // a ban longer than suspectMs keeps the peer suspect while it lasts
  const long = new BanList({ now: () => now, initialMs: 90_000, suspectMs: 1_000 });
  long.ban("q");
  now += 50_000;
  assert.equal(long.isSuspect("q"), true);
});

/** A router over `servers`: a one-span route on the first one not skipped, else `MISSING_BLOCKS`. */
const missing = new SwarmError("MISSING_BLOCKS", "no server for blocks [0, 3)");
const routeOn = (servers: string[]) => (skip: (p: string) => boolean) => {
  const s = servers.find((p) => !skip(p));
  if (!s) throw missing;
  return [{ server: { peerId: s } }];
};
const peerOf = (r: { server: { peerId: string } }[]) => r[0].server.peerId;
/** Asserts that routing over `servers` finds nothing `bans` lets it use. */
const refused = (bans: BanList, servers: string[], why: string) =>
  assert.throws(() => bans.routeAround(routeOn(servers)), (err) => err === missing, why);

Deno.test("BanList.routeAround skips suspects while the rest covers the blocks, else only banned peers", () => {
  let now = 0;
  const bans = new BanList({ now: () => now });
  bans.ban("a");
  bans.ban("c");
  now = 20_000; // a's and c's bans ended; both still suspect
  bans.ban("c"); // c banned again (30 s)
  now += 5_000;
  assert.equal(peerOf(bans.routeAround(routeOn(["a", "b"]))), "b", "around the suspect");
  assert.equal(peerOf(bans.routeAround(routeOn(["a", "c"]))), "a", "a suspect when nothing else covers");
  assert.equal(peerOf(bans.routeAround(routeOn(["c", "b"]))), "b", "a banned peer not while another covers");
  const other = new Error("a bug in the router");
  assert.throws(
    () =>
      bans.routeAround(() => {
        throw other;
      }),
    (err) => err === other,
    "other errors are not retried",
  );
});

Deno.test("BanList.routeAround probes a banned peer that alone covers the blocks, once per probeMs", () => {
  let now = 0;
  const bans = new BanList({ now: () => now, probeMs: 1_000 });
  bans.ban("c"); // 15 s
  now = 999;
  refused(bans, ["c"], "not within probeMs of the failure");
  now = 1_000;
  assert.equal(peerOf(bans.routeAround(routeOn(["c"]))), "c", "a probe once probeMs passed");
  assert.equal(bans.isBanned("c"), true, "a probe does not lift the ban");
  refused(bans, ["c"], "one probe per probeMs");
  now = 1_500;
  bans.ban("c"); // the probe failed: the same outage
  assert.equal(bans.failures("c"), 1);
  now = 2_400;
  refused(bans, ["c"], "probeMs after its failure");
  now = 2_500;
  assert.equal(peerOf(bans.routeAround(routeOn(["c"]))), "c", "probed again");
  // a route over two banned peers marks both; routing that only considered one marks nothing else
  bans.ban("d");
  now = 4_000;
  const both = bans.routeAround((skip) => {
    if (skip("c") || skip("d")) throw missing;
    return [{ server: { peerId: "c" } }, { server: { peerId: "d" } }];
  });
  assert.deepEqual(both.map((x) => x.server.peerId), ["c", "d"]);
  refused(bans, ["d"], "d was probed too");
  bans.succeed("c"); // the probe worked: the ban is lifted
  assert.equal(peerOf(bans.routeAround(routeOn(["c"]))), "c");
  assert.equal(bans.isBanned("c"), false);
  now = 17_500; // d's ban (from 2.5 s) is over: it is only suspect, used with no probe limit
  assert.equal(peerOf(bans.routeAround(routeOn(["d"]))), "d");
  assert.equal(peerOf(bans.routeAround(routeOn(["d"]))), "d");
});

Deno.test("BanList stays bounded: records are forgotten after forgetMs, and the oldest go beyond maxPeers", () => {
  let now = 0;
  const bans = new BanList({ now: () => now, suspectMs: 1_000, forgetMs: 10_000, maxPeers: 3 });
  for (const p of ["a", "b", "c", "d", "e"]) bans.ban(p);
  assert.equal(bans.size, 3, "a flood of failing peer ids keeps maxPeers records");
  assert.equal(bans.failures("a"), 0, "the oldest were dropped");
  assert.equal(bans.isBanned("e"), true, "the newest are kept");
  bans.ban("c"); // c failed again while banned: the same outage, but now the newest failure
  bans.ban("f");
  assert.equal(bans.failures("c"), 1, "a peer that failed again moved to the end and stayed");
  assert.equal(bans.failures("d"), 0);
  now = 15_000;
  bans.ban("c"); // after its ban: a second outage, 30 s
  assert.equal(bans.failures("c"), 2);
  now = 15_000 + 15_000 + 10_000 + 1; // f's ban (from 0, 15 s) ended, then forgetMs
  assert.equal(bans.failures("f"), 1, "nothing is dropped until the next failure");
  bans.ban("g");
  assert.equal(bans.size, 2, "expired records went with it");
  assert.equal(bans.failures("c"), 2, "c's second ban (30 s) has not ended forgetMs ago");
  assert.equal(bans.failures("g"), 1);
  // with the defaults, a forgotten peer starts its backoff again
  assert.equal(new BanList().size, 0);
});

Deno.test("BanList remembers refusals by session length, for suspectMs, bounded by maxPeers", () => {
  let now = 0;
  const bans = new BanList({ suspectMs: 1000, maxPeers: 2, now: () => now });
  bans.refuse("A", 100);
  assert.equal(bans.refuses("A", 100), true);
  assert.equal(bans.refuses("A", 500), true, "longer is refused too");
  assert.equal(bans.refuses("A", 99), false, "shorter may be taken");
  bans.refuse("A", 60);
  bans.refuse("A", 80); // the shortest refused stands
  assert.equal(bans.refuses("A", 60), true);
  assert.equal(bans.refuses("A", 59), false);
  assert.equal(bans.isBanned("A") || bans.isSuspect("A"), false, "a refusal is no failure");
  now = 1000; // the last refusal at 0 has lapsed
  assert.equal(bans.refuses("A", 100), false);
  bans.refuse("B", 10);
  bans.refuse("C", 10);
  bans.refuse("D", 10);
  assert.equal(bans.refuses("B", 10), false, "the oldest goes beyond maxPeers");
  assert.equal(bans.refuses("C", 10) && bans.refuses("D", 10), true);
});
