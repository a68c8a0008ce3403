import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { FakeHead, FakeTokenizer } from "../../testing/mod.ts";
import { connectSwarm, PulledSwarmTable } from "./connect_swarm.ts";
import type { SwarmTable } from "../swarm_table.ts";
import type { ProtocolClient } from "../swarm_client_transport.ts";
import { silentLogger } from "../../util/logger.ts";
import { ephemeralIdentity } from "../peer_identity.ts";
import { type FixtureServer, startFixtureServer } from "../../../tests/helpers/swarm_client_fixture.ts";
import { streamFrameChannel } from "../frame_channel.ts";
import { createLibp2pNode } from "../libp2p_node.ts";
import { TABLE_PROTOCOL } from "../protocol_ids.ts";
import { freePort } from "../../../tests/helpers/free_port.ts";

const MODEL = "fake/model";
const H = 16;
const base = {
  model: MODEL,
  head: new FakeHead(H),
  tokenizer: new FakeTokenizer(),
  numBlocks: 4,
  tableRefreshMs: 0,
};

Deno.test({
  name: "connectSwarm pulls again until an initial peer answers (a server still starting)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const identity = await ephemeralIdentity();
    const port = freePort();
    const addr = `/ip4/127.0.0.1/tcp/${port}/p2p/${identity.peerId}`;
    let server: FixtureServer | undefined;
    // the first pulls are refused: nothing listens on the port for the first 700 ms
    const started = new Promise<void>((resolve, reject) =>
      setTimeout(
        () =>
          startFixtureServer({ model: MODEL, start: 0, end: 4, numBlocks: 4, hiddenSize: H, identity, port })
            .then((s) => {
              server = s;
              resolve();
            }, reject),
        700,
      )
    );
    try {
      const client = await connectSwarm({ ...base, initialPeers: [addr], connectTimeoutMs: 10_000 });
      try {
        assert.ok(server, "connected before the server was up");
        assert.deepEqual(client.swarmTable.servers(MODEL).map((r) => r.peerId), [identity.peerId]);
      } finally {
        await client.stop();
      }
    } finally {
      await started;
      await server?.stop();
    }
  },
});

Deno.test({
  name:
    "connectSwarm: an initial peer that never answers gives NO_PEERS at the connect timeout, with the pulls made",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const identity = await ephemeralIdentity();
    const addr = `/ip4/127.0.0.1/tcp/${freePort()}/p2p/${identity.peerId}`;
    const t0 = performance.now();
    const err = await connectSwarm({ ...base, initialPeers: [addr], connectTimeoutMs: 1_500 }).then(
      () => assert.fail("connected to nothing"),
      (e) => e,
    );
    assert.ok(err instanceof SwarmError, String(err));
    assert.equal(err.code, "NO_PEERS");
    assert.ok(err.message.includes(addr), err.message);
    const pulls = Number(/in (\d+) pull\(s\) over [\d.]+ s/.exec(err.message)?.[1]);
    assert.ok(pulls >= 2, err.message);
    assert.match(err.hint ?? "", /--initial-peers/);
    // it gave up at the timeout, not after the first refusal
    assert.ok(performance.now() - t0 >= 1_000, `gave up after ${performance.now() - t0} ms`);
  },
});

Deno.test({
  name: "connectSwarm: the caller's abort ends the pulls with the caller's reason, not NO_PEERS",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const identity = await ephemeralIdentity();
    const addr = `/ip4/127.0.0.1/tcp/${freePort()}/p2p/${identity.peerId}`;
    const ac = new AbortController();
    const reason = new Error("the user gave up");
    const timer = setTimeout(() => ac.abort(reason), 600);
    try {
      await assert.rejects(
        connectSwarm({ ...base, initialPeers: [addr], connectTimeoutMs: 10_000, signal: ac.signal }),
        (e) => e === reason,
      );
    } finally {
      clearTimeout(timer);
    }
  },
});

Deno.test({
  name:
    "connectSwarm: a peer that answers with an empty table is pulled again, then NO_PEERS says it answered",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const identity = await ephemeralIdentity();
    const node = await createLibp2pNode({
      privateKey: identity.privateKey,
      host: "127.0.0.1",
      port: 0,
      dht: false,
    });
    await node.start();
    let asked = 0;
    await node.handle(TABLE_PROTOCOL, async (stream) => {
      const ch = streamFrameChannel(stream);
      await ch.read();
      asked++;
      await ch.write({ type: "table", records: [] });
      await ch.close();
    });
    try {
      const addr = node.getMultiaddrs()[0].toString();
      const err = await connectSwarm({ ...base, initialPeers: [addr], connectTimeoutMs: 1_500 }).then(
        () => assert.fail("connected to a swarm without servers"),
        (e) => e,
      );
      assert.ok(err instanceof SwarmError, String(err));
      assert.equal(err.code, "NO_PEERS");
      assert.match(err.message, /: 1 answered with no record of fake\/model$/);
      assert.match(err.hint, /know no server of fake\/model yet/);
      assert.ok(asked >= 2, `asked ${asked} time(s)`);
    } finally {
      await node.stop();
    }
  },
});

Deno.test({
  name:
    "connectSwarm: a swarm of other models only connects without waiting for the timeout; routing names the missing blocks",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await startFixtureServer({
      model: "other/model",
      start: 0,
      end: 4,
      numBlocks: 4,
      hiddenSize: H,
    });
    try {
      const t0 = performance.now();
      const client = await connectSwarm({
        ...base,
        initialPeers: [server.addrs[0]],
        connectTimeoutMs: 60_000,
      });
      try {
        assert.ok(performance.now() - t0 < 30_000, "bounded: it did not wait for the connect timeout");
        assert.equal(client.swarmTable.servers(MODEL).length, 0);
        await assert.rejects(
          client.generate("abc", { maxNewTokens: 2, eosTokenIds: [] }).complete(),
          (e) => e instanceof SwarmError && /0\.\.3/.test(e.message),
        );
      } finally {
        await client.stop();
      }
    } finally {
      await server.stop();
    }
  },
});

Deno.test("PulledSwarmTable.refresh: a caller that gives up stops waiting; the shared pull goes on for the others", async () => {
  const gate = Promise.withResolvers<void>();
  const pullSignals: AbortSignal[] = [];
  const client = {
    pullTable: async (_model: string, { signal }: { signal?: AbortSignal } = {}) => {
      pullSignals.push(signal!);
      await gate.promise;
      signal?.throwIfAborted();
      return [];
    },
  } as unknown as ProtocolClient;
  const table = { servers: () => [] } as unknown as SwarmTable;
  const pulled = new PulledSwarmTable(
    table,
    () => client,
    ["/ip4/127.0.0.1/tcp/1/p2p/x"],
    MODEL,
    silentLogger,
  );
  const leaving = new AbortController();
  const first = pulled.refresh({ signal: leaving.signal });
  const second = pulled.refresh();
  assert.equal(pullSignals.length, 1, "one pull for both");
  const reason = new Error("client went away");
  leaving.abort(reason);
  await assert.rejects(first, (e) => e === reason);
  gate.resolve();
  assert.equal(await second, 1, "the other caller still gets the pull's answer");
  assert.equal(pullSignals[0].aborted, false);
});
