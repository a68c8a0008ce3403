import assert from "node:assert/strict";
import {
  addressGroup,
  embeddedIpv4,
  formatIp,
  ipScope,
  isLoopbackAddress,
  normalizeIp,
  parseIp,
} from "./ip_address.ts";

Deno.test("parseIp/formatIp: canonical text (RFC 5952 for IPv6), zones kept, brackets dropped", () => {
  const cases: Array<[string, string]> = [
    ["1.2.3.4", "1.2.3.4"],
    ["[2001:DB8:0:0:1:0:0:1]", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["fe80::0001%eth0", "fe80::1%eth0"],
    ["::ffff:1.2.3.4", "::ffff:102:304"],
  ];
  for (const [text, want] of cases) assert.equal(formatIp(parseIp(text)!), want, text);
});

Deno.test("embeddedIpv4/normalizeIp: the IPv4 address behind IPv6 forms, and not behind :: or ::1", () => {
  assert.deepEqual([...embeddedIpv4(parseIp("::ffff:7f00:1")!)!], [127, 0, 0, 1]);
  assert.equal(embeddedIpv4(parseIp("::1")!), undefined);
  assert.equal(embeddedIpv4(parseIp("::")!), undefined);
  assert.equal(embeddedIpv4(parseIp("1.2.3.4")!), undefined);
  assert.equal(formatIp(normalizeIp(parseIp("64:ff9b::c000:0201")!)), "192.0.2.1");
  assert.equal(ipScope(parseIp("::ffff:0:a00:1")!), "private");
});

Deno.test("addressGroup: per-source key — the IPv4 address in any form, the /64 of an IPv6 address", () => {
  assert.equal(addressGroup("127.0.0.1"), "127.0.0.1");
  assert.equal(addressGroup("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(addressGroup("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressGroup("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
  assert.notEqual(addressGroup("2001:db8:1:3::1"), addressGroup("2001:db8:1:2::1"));
  assert.equal(addressGroup("::1"), "::/64");
  assert.equal(addressGroup("not-an-ip"), "not-an-ip");
});

Deno.test("isLoopbackAddress: only what a socket on this machine's loopback can show", () => {
  for (const h of ["127.0.0.1", "127.9.9.9", "::1", "[::1]", "::ffff:127.0.0.1", "0:0:0:0:0:0:0:1"]) {
    assert.equal(isLoopbackAddress(h), true, h);
  }
  // these connect to this machine (ipScope calls them loopback, to refuse them) but a socket that
  // shows them did not stay on it, or they are no socket's address
  for (
    const h of [
      "0.0.0.0",
      "::",
      "::2",
      "64:ff9b::7f00:1",
      "::127.0.0.1",
      "fe80::1%lo",
      "10.0.0.1",
      "localhost",
    ]
  ) {
    assert.equal(isLoopbackAddress(h), false, h);
  }
});
