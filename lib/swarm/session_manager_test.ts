import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { FakeBackend } from "../testing/mod.ts";
import { perClientLimit, SessionManager } from "./session_manager.ts";

const OPEN = { sessionId: "s", start: 2, end: 6, maxLength: 256, batch: 1 };

/** A started fake runtime serving blocks [2, 6) of 8 with a cache of `cacheTokens`. */
async function backend(cacheTokens: number): Promise<FakeBackend> {
  const runtime = new FakeBackend({
    modelId: "m",
    numBlocks: 8,
    start: 2,
    end: 6,
    hiddenSize: 16,
    cacheTokens,
  });
  await runtime.start();
  return runtime;
}

Deno.test("session manager: two opens of one id at once: one session, the other BAD_FRAME, nothing leaked", async () => {
  const runtime = await backend(4096);
  const sessions = new SessionManager({ runtime, limits: { maxSessions: 8 } });
  for (let round = 0; round < 3; round++) {
    const [a, b] = await Promise.allSettled([sessions.open(OPEN), sessions.open(OPEN)]);
    assert.equal(a.status, "fulfilled");
    assert.ok(
      b.status === "rejected" && b.reason instanceof WireError && b.reason.code === "BAD_FRAME",
      String(b.status === "rejected" ? b.reason : "opened twice"),
    );
    assert.equal(runtime.info().openSessions, 1);
    await sessions.close((a as PromiseFulfilledResult<Awaited<ReturnType<SessionManager["open"]>>>).value);
    // before: each round left the overwritten session open, its cache reserved
    assert.equal(runtime.info().openSessions, 0);
    assert.equal(runtime.info().cacheTokensLeft, 4096);
  }
  await sessions.stop();
  await runtime.stop();
});

Deno.test("session manager: one client holds at most all but a quarter of the slots; the rest stay for others", async () => {
  const runtime = await backend(1 << 20);
  assert.deepEqual([1, 2, 3, 4, 8, 64].map(perClientLimit), [1, 2, 3, 3, 6, 48]);
  const sessions = new SessionManager({ runtime, limits: { maxSessions: 8 } });
  const open = (id: string, client: string, maxLength = 256) =>
    sessions.open({ ...OPEN, sessionId: id, maxLength }, client);
  const mine = [];
  for (let i = 0; i < 6; i++) mine.push(await open(`a${i}`, "peerA"));
  await assert.rejects(open("a6", "peerA"), (err: unknown) => {
    assert.ok(err instanceof WireError && err.code === "SESSION_LIMIT");
    assert.match(err.message, /client peerA holds 6 of this server's 8 sessions/);
    return true;
  });
  // another client still gets in, up to the server's limit
  const theirs = [await open("b0", "peerB"), await open("b1", "peerB")];
  await assert.rejects(open("b2", "peerB"), /server has 8 sessions open/);
  // a closed session gives its client's share back
  await sessions.close(mine[0]);
  assert.equal((await open("a7", "peerA")).client, "peerA");
  // an open the runtime refuses takes no share
  await sessions.close(theirs[0]);
  await sessions.close(theirs[1]);
  // (6 refused opens: were each to keep a share, peerB could open none of the 2 free slots)
  for (let i = 0; i < 6; i++) {
    await assert.rejects(open(`big${i}`, "peerB", 1 << 30));
  }
  theirs.push(await open("b3", "peerB"), await open("b4", "peerB"));
  assert.equal(sessions.count, 8);
  await sessions.stop();
  // and nothing is left counted: the same client may fill its share again
  for (let i = 0; i < 6; i++) await open(`c${i}`, "peerA");
  await sessions.stop();
  await runtime.stop();
});

Deno.test("session manager: sessions of no known client are not capped per client", async () => {
  const runtime = await backend(1 << 20);
  const sessions = new SessionManager({ runtime, limits: { maxSessions: 4 } });
  for (let i = 0; i < 4; i++) await sessions.open({ ...OPEN, sessionId: `s${i}` });
  assert.equal(sessions.count, 4);
  await sessions.stop();
  await runtime.stop();
});
