import assert from "node:assert/strict";
import {
  decideReachability,
  onInternet,
  REACH_VERDICT_MAX_AGE_MS,
  type ReachVerdict,
} from "./reachability.ts";

// (addresses are only strings here: nothing is sent)
const v = (verifierHost: string, dialed: boolean, at = 1000, observedHost = "81.2.69.1"): ReachVerdict => ({
  verifier: `peer-${verifierHost}`,
  verifierHost,
  observedHost,
  dialed,
  at,
});

Deno.test("reachability: two failed dial-backs from two hosts say private, with the address they saw", () => {
  const s = decideReachability([v("81.2.69.11", false), v("81.2.69.12", false)], 2000);
  assert.equal(s.status, "private");
  assert.equal(s.confirmations, 2);
  assert.equal(s.observedHost, "81.2.69.1");
  assert.match(s.reason, /could not connect back to 81\.2\.69\.1/);
});

Deno.test("reachability: two successful dial-backs say public; one is not enough", () => {
  assert.equal(decideReachability([v("8.8.8.8", true)], 2000).status, "unknown");
  const s = decideReachability([v("8.8.8.8", true), v("9.9.9.9", true)], 2000);
  assert.equal(s.status, "public");
  assert.equal(s.confirmations, 2);
});

Deno.test("reachability: one host counts once (its latest verdict); disagreement stays unknown", () => {
  // one verifier host asked twice is one verdict
  assert.equal(decideReachability([v("8.8.8.8", false, 1), v("8.8.8.8", false, 2)], 3).status, "unknown");
  // the latest verdict of a host replaces its older one
  const s = decideReachability([v("8.8.8.8", false, 1), v("8.8.8.8", true, 5), v("9.9.9.9", true, 2)], 6);
  assert.equal(s.status, "public");
  // one ok and one failed: unknown, with the count in the reason
  const t = decideReachability([v("8.8.8.8", true), v("9.9.9.9", false)], 2000);
  assert.equal(t.status, "unknown");
  assert.match(t.reason, /1 of 2/);
  // two ok against one failed: public; two failed against two ok: public too (ties go to public)
  assert.equal(
    decideReachability([v("1.1.1.1", true), v("2.2.2.2", true), v("3.3.3.3", false)], 2000).status,
    "public",
  );
  assert.equal(
    decideReachability(
      [v("1.1.1.1", true), v("2.2.2.2", true), v("3.3.3.3", false), v("4.4.4.4", false)],
      2000,
    ).status,
    "public",
  );
});

Deno.test("reachability: loopback and private views, and old verdicts, do not count", () => {
  const local = decideReachability(
    [v("127.0.0.1", true, 1, "127.0.0.1"), v("10.0.0.2", true, 1, "10.0.0.1")],
    2,
  );
  assert.equal(local.status, "unknown");
  assert.equal(local.counted, 0);
  assert.match(local.reason, /loopback or private/);
  const old = decideReachability(
    [v("8.8.8.8", false, 0), v("9.9.9.9", false, 0)],
    REACH_VERDICT_MAX_AGE_MS + 1,
  );
  assert.equal(old.status, "unknown");
  assert.match(old.reason, /no peer/);
});

Deno.test("reachability: NAT_SCOPE=private counts private views (a private network with NATs; the test bed)", () => {
  // the bed's "internet" is the benchmarking range 198.18.0.0/15, a special-purpose range
  const bed = [v("198.18.0.11", false, 1, "198.18.0.1"), v("198.18.0.12", false, 1, "198.18.0.1")];
  assert.equal(decideReachability(bed, 2).status, "unknown");
  const s = decideReachability(bed, 2, { scope: "private" });
  assert.equal(s.status, "private");
  assert.equal(s.observedHost, "198.18.0.1");
  // loopback never counts
  assert.equal(onInternet("127.0.0.1", "private"), false);
  assert.equal(onInternet("10.1.2.3", "private"), true);
  assert.equal(onInternet("10.1.2.3"), false);
});
