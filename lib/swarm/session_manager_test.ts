import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { FakeBackend } from "../testing/mod.ts";
import { SessionManager } from "./session_manager.ts";

const OPEN = { sessionId: "s", start: 2, end: 6, maxLength: 256, batch: 1 };

Deno.test("session manager: two opens of one id at once: one session, the other BAD_FRAME, nothing leaked", async () => {
  const runtime = new FakeBackend({
    modelId: "m",
    numBlocks: 8,
    start: 2,
    end: 6,
    hiddenSize: 16,
    cacheTokens: 4096,
  });
  await runtime.start();
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
