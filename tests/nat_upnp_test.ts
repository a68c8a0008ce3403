/**
 * `--upnp` (UPnP IGD / NAT-PMP port mapping) cannot be tested here: no router on this machine
 * answers UPnP. What can be: the node starts and stops with it on under Deno, where no router
 * answers, without crashing or hanging — run in a network namespace with nothing but loopback,
 * so the router search cannot leave it.
 */
import assert from "node:assert/strict";
import { netnsAvailable, NetnsBed } from "./helpers/netns_bed.ts";

const bed = await netnsAvailable();
if (!bed.ok) console.warn(`%cNAT tests skipped: ${bed.reason}`, "color: yellow");

Deno.test({
  name: "UPnP: a node with --upnp starts and stops where no router answers",
  ignore: !bed.ok,
  async fn() {
    const net = await NetnsBed.create({ publics: [] });
    try {
      const host = await net.isolatedHost("solo");
      const script = new URL("./helpers/upnp_node.ts", import.meta.url).pathname;
      const out = await new Deno.Command("ip", {
        args: ["netns", "exec", host.ns, Deno.execPath(), "run", "--allow-all", script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const done = JSON.parse(text.trim().split("\n").pop()!);
      assert.equal(done.event, "done");
      assert.equal(done.upnp, true, "the port mapping service ran");
      assert.ok(done.addrs.length >= 1);
    } finally {
      await net.destroy();
    }
  },
});
