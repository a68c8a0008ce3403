import assert from "node:assert/strict";
import { memoryLogger } from "../util/logger.ts";
import { fillNonceGaps, MAX_GAP_FILLS, type NonceGapOptions } from "./nonce_gaps.ts";

function gaps(
  pending: number | Error,
  below: number,
  refuse: (nonce: number) => Error | undefined = () => undefined,
) {
  const signed: { nonce: number; to: string; price: bigint }[] = [];
  const { logger, records } = memoryLogger();
  const o: NonceGapOptions = {
    provider: {
      getNonce: () => pending instanceof Error ? Promise.reject(pending) : Promise.resolve(pending),
    },
    address: "0x" + "ab".repeat(20),
    below,
    price: 7n,
    sign: (tx, nonce, price) => {
      signed.push({ nonce, to: tx.to, price });
      return Promise.resolve(`raw-${nonce}`);
    },
    broadcast: (raw) => {
      const err = refuse(Number(raw.slice(4)));
      return err ? Promise.reject(err) : Promise.resolve(`hash-${raw}`);
    },
    logger,
    stuckLabel: "heartbeat",
  };
  return { o, signed, records };
}

Deno.test("fillNonceGaps: every nonce from the pending count up to the stuck one gets a transfer to itself", async () => {
  const { o, signed, records } = gaps(3, 6);
  assert.deepEqual(await fillNonceGaps(o), [3, 4, 5]);
  assert.deepEqual(signed.map((s) => [s.nonce, s.to, s.price]), [3, 4, 5].map((n) => [n, o.address, 7n]));
  assert.equal(records.filter((r) => r.level === "warn").length, 3);
});

Deno.test("fillNonceGaps: a nonce a pool tx still holds (underpriced) is left; none below: nothing sent", async () => {
  const held = gaps(3, 6, (n) => n === 4 ? new Error("replacement transaction underpriced") : undefined);
  assert.deepEqual(await fillNonceGaps(held.o), [3, 5]);
  const none = gaps(6, 6);
  assert.deepEqual(await fillNonceGaps(none.o), []);
  assert.deepEqual(none.signed, []);
});

Deno.test("fillNonceGaps: an RPC that cannot give the pending count fills nothing; a gap is bounded", async () => {
  const down = gaps(new Error("502"), 6);
  assert.deepEqual(await fillNonceGaps(down.o), []);
  assert.deepEqual(down.signed, []);
  const wide = gaps(0, 1000);
  assert.equal((await fillNonceGaps(wide.o)).length, MAX_GAP_FILLS);
});
