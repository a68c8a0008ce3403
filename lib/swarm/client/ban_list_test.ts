import assert from "node:assert/strict";
import { BanList } from "./ban_list.ts";

Deno.test("BanList bans with exponential backoff, capped, reset by success", () => {
  let now = 0;
  const bans = new BanList({ now: () => now, maxMs: 100_000 });
  assert.equal(bans.isBanned("p"), false);
  assert.equal(bans.ban("p"), 15_000);
  assert.equal(bans.isBanned("p"), true);
  now = 15_000;
  assert.equal(bans.isBanned("p"), false, "the ban expires");
  assert.equal(bans.ban("p"), 30_000, "consecutive failures double the ban");
  assert.equal(bans.ban("p"), 60_000);
  assert.equal(bans.ban("p"), 100_000, "capped");
  assert.equal(bans.failures("p"), 4);
  assert.deepEqual(bans.banned(), ["p"]);
  bans.succeed("p");
  assert.equal(bans.isBanned("p"), false);
  assert.equal(bans.ban("p"), 15_000, "a success resets the backoff");
});
