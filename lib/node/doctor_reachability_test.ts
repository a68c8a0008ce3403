import assert from "node:assert/strict";
import { resolveConfig } from "../config/resolve_config.ts";
import { checkReachabilityForDoctor, reachabilityCheck } from "./doctor_reachability.ts";

const cfg = (env: Record<string, string> = {}) =>
  resolveConfig({ env: { PLUMISE_OFFLINE: "true", ...env } }).config;
const verdict = (status: "public" | "private" | "unknown") => ({
  status,
  observedHost: "198.18.0.1",
  confirmations: 2,
  reason: status === "private"
    ? "2 peers could not connect back to 198.18.0.1: behind NAT or a firewall"
    : "x",
  peersReached: 2,
});

Deno.test("doctor reachability: public passes; behind NAT passes (relays) with how to be direct; no relays fails", () => {
  const pub = reachabilityCheck(cfg(), verdict("public"), 31330);
  assert.equal(pub.ok, true);
  assert.match(
    pub.detail,
    /^reachable from the internet: yes — 2 peers connected back to 198\.18\.0\.1:31330/,
  );
  const nat = reachabilityCheck(cfg(), verdict("private"), 31330);
  assert.equal(nat.ok, true);
  assert.match(
    nat.detail,
    /^reachable from the internet: no — behind NAT .*serving through relays \(2 slots\), sessions hole punched/,
  );
  assert.match(nat.hint!, /forward TCP port 31330/);
  const stuck = reachabilityCheck(cfg({ RELAY_RESERVATIONS: "0" }), verdict("private"), 31330);
  assert.equal(stuck.ok, false);
  assert.match(stuck.hint!, /RELAY_RESERVATIONS=2/);
  const unknown = reachabilityCheck(cfg(), verdict("unknown"), 31330);
  assert.equal(unknown.ok, true);
  assert.match(unknown.detail, /unknown — x \(2 initial peer\(s\) answered\)/);
});

Deno.test("doctor reachability: without initial peers there is nobody to ask", async () => {
  const c = await checkReachabilityForDoctor(cfg());
  assert.equal(c.ok, true);
  assert.match(c.detail, /no initial peers/);
});
