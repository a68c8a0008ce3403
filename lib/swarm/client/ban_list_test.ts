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

Deno.test("BanList.routeAround skips suspects while the rest covers the blocks, else only banned peers", () => {
  let now = 0;
  const bans = new BanList({ now: () => now });
  const missing = new SwarmError("MISSING_BLOCKS", "no server for blocks [0, 3)");
  /** A router over servers a, b (suspect after a failure) and c (banned): the first one not skipped. */
  const route = (servers: string[]) => (skip: (p: string) => boolean) => {
    const s = servers.find((p) => !skip(p));
    if (!s) throw missing;
    return s;
  };
  bans.ban("a");
  bans.ban("c");
  now = 20_000; // a's and c's bans ended; both still suspect
  bans.ban("c"); // c banned again (30 s)
  assert.equal(bans.routeAround(route(["a", "b"])), "b", "around the suspect");
  assert.equal(bans.routeAround(route(["a", "c"])), "a", "a suspect when nothing else covers");
  assert.throws(() => bans.routeAround(route(["c"])), (err) => err === missing, "banned peers never");
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
