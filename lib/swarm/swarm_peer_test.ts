import assert from "node:assert/strict";
import { ephemeralIdentity } from "./peer_identity.ts";
import { INFO_PROTOCOL } from "./protocol_ids.ts";
import { ONE_SHOT_STREAMS, SwarmPeer } from "./swarm_peer.ts";
import { type FrameChannel, streamFrameChannel } from "./frame_channel.ts";
import type { PrivateKey } from "@libp2p/interface";
import { signRecord } from "./record_signer.ts";
import { testRecord } from "../testing/mod.ts";
import { waitFor } from "../../tests/helpers/wait_for.ts";

const peer = async () =>
  new SwarmPeer({
    privateKey: (await ephemeralIdentity()).privateKey,
    host: "127.0.0.1",
    port: 0,
    dht: false,
  });

Deno.test({
  name:
    "swarm peer: a protocol the other peer does not serve is refused with UnsupportedProtocolError, and the connection stays usable",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await peer(), client = await peer();
    try {
      await server.start();
      await client.start();
      // a timeout far beyond the test's run: the failure must come from the refusal itself
      const c = client.client(server.multiaddrs()[0], { openMs: 600_000 });
      await assert.rejects(c.info(), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.equal(e.name, "UnsupportedProtocolError");
        assert.match(e.message, /could not negotiate \/plumise\/info\/1\.0\.0/);
        return true;
      });
      // serve it now: the same client (same connection) gets an answer
      await server.handle(INFO_PROTOCOL, async (ch) => {
        await ch.read();
        await ch.write({ type: "error", code: "UNKNOWN_MODEL", message: "served now" });
        await ch.close();
      });
      await assert.rejects(c.info(), /served now/);
    } finally {
      await client.stop();
      await server.stop();
    }
  },
});

Deno.test({
  name:
    "swarm peer: a record relayed to a node without contact with its peer is passed on only once a probe reached the peer",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const x = await peer();
    const nodes = [x];
    try {
      await x.start();
      const boot = [x.multiaddrs()[0]];
      const joined = async (privateKey?: PrivateKey) => {
        const p = new SwarmPeer({
          privateKey: privateKey ?? (await ephemeralIdentity()).privateKey,
          host: "127.0.0.1",
          port: 0,
          dht: false,
          initialPeers: boot,
        });
        nodes.push(p);
        await p.start();
        return p;
      };
      // s and y know only x; s's record reaches y relayed by x
      const sId = await ephemeralIdentity();
      const s = await joined(sId.privateKey), y = await joined();
      const signed = await signRecord(
        testRecord(s.peerId, Date.now(), { addrs: s.multiaddrs(), model: "m" }),
        sId.privateKey,
      );
      await s.publish(signed);
      await waitFor(() => y.table.get(s.peerId) !== undefined, { what: "s's record at y" });
      // y had no contact with s: it probes s, after which s is reachable there and in y's replies
      await waitFor(() => y.table.reachable(s.peerId), { what: "y's probe of s" });
      const reply = await x.client(y.peerId).pullTable("m");
      assert.ok(reply.some((r) => r.payload.includes(s.peerId)), "y passes s's record on");
    } finally {
      for (const n of nodes.reverse()) await n.stop();
    }
  },
});

Deno.test({
  name:
    "swarm peer: one connection holds at most ONE_SHOT_STREAMS streams of a one-shot protocol at once; more where a handler asks",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await peer(), client = await peer();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let handled = 0;
    const hold = async (ch: FrameChannel) => {
      handled++;
      await held;
      await ch.write({ type: "error", code: "UNKNOWN_MODEL", message: "released" });
      await ch.close();
    };
    try {
      await server.start();
      await client.start();
      await server.handle(INFO_PROTOCOL, hold);
      await server.handle("/plumise/test-many/1.0.0", hold, { maxInboundStreams: ONE_SHOT_STREAMS + 8 });
      // (handling it on the client too lifts libp2p's default outbound limit, as every plumise peer does)
      await client.handle("/plumise/test-many/1.0.0", hold);
      const addr = server.multiaddrs()[0];
      /** Opens a stream and sends a frame; resolves with the channel, or the error it met. */
      const open = async (protocol: string) => {
        try {
          const ch = streamFrameChannel(await client.dialStream(addr, protocol));
          await ch.write({ type: "info_request" } as never);
          return ch;
        } catch (err) {
          return err as Error;
        }
      };
      const first = [];
      for (let i = 0; i < ONE_SHOT_STREAMS; i++) first.push(await open(INFO_PROTOCOL));
      assert.ok(first.every((c) => !(c instanceof Error)), String(first.find((c) => c instanceof Error)));
      assert.equal(first.length, ONE_SHOT_STREAMS);
      await waitFor(() => handled === ONE_SHOT_STREAMS, { what: "every stream handled" });
      // one more on the same connection: refused (reset) by libp2p, never handed to the handler
      const extra = await open(INFO_PROTOCOL);
      if (!(extra instanceof Error)) {
        await assert.rejects(extra.read({ signal: AbortSignal.timeout(10_000) }));
      }
      assert.equal(handled, ONE_SHOT_STREAMS);
      // a protocol registered with a larger limit takes more on the same connection
      const many = [];
      for (let i = 0; i < ONE_SHOT_STREAMS + 8; i++) many.push(await open("/plumise/test-many/1.0.0"));
      assert.ok(many.every((c) => !(c instanceof Error)), String(many.find((c) => c instanceof Error)));
      await waitFor(() => handled === 2 * ONE_SHOT_STREAMS + 8, {
        what: "the larger limit's streams handled",
      });
      release();
      for (const ch of [...first, ...many]) {
        const reply = await (ch as FrameChannel).read();
        assert.equal(reply?.type, "error");
        await (ch as FrameChannel).close();
      }
      // once they are done, the connection takes new streams again
      const again = await waitFor(async () => {
        const ch = await open(INFO_PROTOCOL);
        if (ch instanceof Error) return undefined;
        return await ch.read().catch(() => undefined);
      }, { what: "a stream after the others ended" });
      assert.equal(again.type, "error");
    } finally {
      release();
      await client.stop();
      await server.stop();
    }
  },
});
