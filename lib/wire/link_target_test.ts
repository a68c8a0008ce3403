import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { addressScope, linkTarget } from "./link_target.ts";

Deno.test("addressScope: loopback, private and link-local, public; names are not addresses", () => {
  const cases: Array<[string, string | undefined]> = [
    ["127.0.0.1", "loopback"],
    ["127.200.1.9", "loopback"],
    ["::1", "loopback"],
    ["[::1]", "loopback"],
    ["::ffff:127.0.0.1", "loopback"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "private"],
    ["100.64.0.1", "private"],
    ["0.0.0.0", "private"],
    ["fd00::1", "private"],
    ["fe80::1", "private"],
    ["172.32.0.1", "public"],
    ["8.8.8.8", "public"],
    ["2001:db8::1", "public"],
    ["example.org", undefined],
    ["300.1.1.1", undefined],
  ];
  for (const [host, want] of cases) assert.equal(addressScope(host), want, host);
});

Deno.test("linkTarget: no more internal than the client; names resolved and checked; one refusal for all", async () => {
  const dns = (table: Record<string, string[]>) => (name: string) => Promise.resolve(table[name] ?? []);
  const resolve = dns({ "next.example": ["203.0.113.7"], "inside.example": ["10.0.0.5"] });
  // a client on this machine may name anything; on a LAN, LAN or public; from the internet, public only
  assert.equal(await linkTarget("127.0.0.1", "127.0.0.1", resolve), "127.0.0.1");
  assert.equal(await linkTarget("10.0.0.5", "192.168.1.2", resolve), "10.0.0.5");
  assert.equal(await linkTarget("next.example", "198.51.100.1", resolve), "203.0.113.7");
  assert.equal(await linkTarget("8.8.8.8", undefined, resolve), "8.8.8.8");
  for (
    const [host, from] of [
      ["127.0.0.1", "198.51.100.1"],
      ["169.254.169.254", "198.51.100.1"],
      ["inside.example", "198.51.100.1"],
      ["127.0.0.1", "10.0.0.9"],
      ["10.0.0.5", undefined],
      ["nowhere.example", "127.0.0.1"],
    ]
  ) {
    await assert.rejects(
      linkTarget(host!, from, resolve),
      (e) =>
        e instanceof WireError && e.code === "LINK_REFUSED" &&
        e.message === `this server does not connect to ${host} for this client` && e.hint.length > 0,
      `${host} from ${from}`,
    );
  }
});
