import assert from "node:assert/strict";
import { SwarmError } from "../../errors.ts";
import { fakeHidden, FakeSwarm } from "../../testing/mod.ts";
import { concatTokens } from "./hidden_ops.ts";
import { newSpan, SessionState, truncateHistory } from "./session_state.ts";

const swarm = new FakeSwarm({ numBlocks: 4, hiddenSize: 8 });
const state = (extra = {}) =>
  new SessionState({
    model: swarm.model,
    start: 0,
    end: 4,
    maxLength: 16,
    table: swarm,
    transport: swarm,
    ...extra,
  });

Deno.test("SessionState: refuses ranges and sizes that are not ones; ids of remote sessions are the session's", () => {
  for (const bad of [{ start: 2, end: 2 }, { start: -1 }, { end: 1.5 }, { maxLength: 0 }, { batch: 0 }]) {
    assert.throws(
      () => state(bad),
      (e) => e instanceof SwarmError && e.code === "BAD_SESSION",
      JSON.stringify(bad),
    );
  }
  const s = state({ sessionId: "sess" });
  assert.equal(s.nextRemoteId(), "sess.1");
  assert.equal(s.nextRemoteId(), "sess.2");
  assert.equal(s.chain.length, 1);
  assert.deepEqual(s.chain[0].history, []);
  s.assertOpen();
  s.closed = true;
  assert.throws(() => s.assertOpen(), (e) => e instanceof SwarmError && e.code === "SESSION_CLOSED");
});

Deno.test("SessionState.checkReply: a reply must be [batch, tokens sent, hidden] float32", () => {
  const s = state({ batch: 1 });
  const span = newSpan(0, 4, [], { peerId: "P", start: 0, end: 4 } as never);
  const x = fakeHidden(1, 3, 8, 1);
  s.checkReply(span, fakeHidden(1, 3, 8, 2), x);
  for (
    const y of [
      fakeHidden(1, 2, 8, 2),
      fakeHidden(2, 3, 8, 2),
      fakeHidden(1, 3, 4, 2),
      { data: new Float64Array(24), shape: [1, 3, 8] },
      { data: new Float32Array(23), shape: [1, 3, 8] },
      undefined,
    ]
  ) {
    assert.throws(
      () => s.checkReply(span, y as never, x),
      (e) => e instanceof SwarmError && e.code === "BAD_REPLY" && /server P answered/.test(e.message),
    );
  }
});

Deno.test("truncateHistory: keeps the first p positions, cutting a chunk where needed", () => {
  const a = fakeHidden(1, 3, 8, 1), b = fakeHidden(1, 2, 8, 2);
  const all = concatTokens([a, b]);
  assert.deepEqual(truncateHistory([a, b], 5), [a, b]);
  assert.deepEqual(truncateHistory([a, b], 3), [a]);
  assert.deepEqual(truncateHistory([a, b], 0), []);
  const cut = truncateHistory([a, b], 4);
  assert.equal(cut.length, 2);
  assert.deepEqual(concatTokens(cut).data, all.data.slice(0, 4 * 8));
  assert.throws(() => truncateHistory([a], 4), (e) => e instanceof SwarmError && e.code === "INTERNAL");
});
