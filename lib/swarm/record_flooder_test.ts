import assert from "node:assert/strict";
import type { SignedRecordWire } from "../wire/mod.ts";
import { RecordFlooder } from "./record_flooder.ts";

const rec = (s: string): SignedRecordWire => ({ payload: s, signature: "AA==" });

Deno.test("record flooder: one record per peer per interval; the newest of those that came meanwhile goes next", async () => {
  const sent: string[] = [];
  let next!: () => void;
  const f = new RecordFlooder({
    perPeerMs: 40,
    send: (r) => {
      sent.push(r.payload);
      next?.();
      return Promise.resolve();
    },
  });
  try {
    f.flood("a", rec("a1"));
    f.flood("b", rec("b1"));
    assert.deepEqual(sent, ["a1", "b1"], "first records go at once");
    f.flood("a", rec("a2"));
    f.flood("a", rec("a3"));
    assert.deepEqual(sent, ["a1", "b1"], "a's next record waits for its interval");
    assert.equal(f.waiting, 1);
    assert.equal(f.stats.coalesced, 1);
    await new Promise<void>((r) => (next = r));
    assert.deepEqual(sent, ["a1", "b1", "a3"], "only the newest went");
  } finally {
    await f.stop();
  }
});

Deno.test("record flooder: at most the global budget at once; the rest wait, and stop() drops them", async () => {
  let sent = 0;
  const f = new RecordFlooder({ perSecond: 2, send: () => Promise.resolve(void sent++) });
  for (let i = 0; i < 10; i++) f.flood(`p${i}`, rec(`r${i}`), "from");
  assert.equal(sent, 4, "a burst of twice the rate");
  assert.equal(f.waiting, 6);
  await f.stop();
  assert.equal(f.waiting, 0);
  f.flood("late", rec("x"));
  assert.equal(sent, 4, "nothing after stop");
});
