import assert from "node:assert/strict";
import { ChainError } from "../errors.ts";
import { memoryLogger } from "../util/logger.ts";
import type { ChainProvider } from "./provider.ts";
import { MAX_HASHES, type StuckTxContext, type Tracked, unstickTx } from "./stuck_tx.ts";

const GWEI = 10n ** 9n;

/** A stand-in for a signed transaction: distinct per nonce and price, even-length hex. */
const rawOf = (nonce: number, price: bigint) =>
  "0x" + nonce.toString(16).padStart(4, "0") + price.toString(16).padStart(32, "0");

/** A queue's context over a scripted node: `market` its gas price, `refuse` its answer to a broadcast. */
function stuck(o: {
  market: () => bigint;
  refuse?: (raw: string) => Error | undefined;
  known?: (hash: string) => boolean | "unknown";
  pending?: number;
}) {
  const broadcasts: string[] = [];
  const { logger, records } = memoryLogger();
  const c: StuckTxContext = {
    provider: {
      getGasPrice: () => Promise.resolve(o.market()),
      getNonce: () => Promise.resolve(o.pending ?? 5),
    } as unknown as ChainProvider,
    logger,
    address: "0x" + "ab".repeat(20),
    maxGasPriceWei: 100n * GWEI,
    maxFeeBumps: 3,
    // a distinct "signed" transaction per nonce and price (its hash is keccak of these bytes)
    sign: (_tx, nonce, price) => Promise.resolve(rawOf(nonce, price)),
    broadcast: (raw) => {
      broadcasts.push(raw);
      const err = o.refuse?.(raw);
      return err ? Promise.reject(err) : Promise.resolve("0xhash");
    },
    known: (hash) => Promise.resolve(o.known?.(hash) ?? false),
  };
  const t: Tracked = {
    key: "k",
    request: { to: c.address, data: "0x", gasLimit: 100_000n, label: "heartbeat" },
    nonce: 5,
    hashes: ["0xfirst"],
    raw: rawOf(5, 10n * GWEI),
    gasPrice: 10n * GWEI,
    bumps: 0,
    lastSentAt: 0,
  };
  return { c, t, broadcasts, records };
}

Deno.test("unstickTx: with the market above MAX_GAS_PRICE_WEI the stuck tx is still broadcast again", async () => {
  // before: the gap filler's price threw GAS_PRICE_TOO_HIGH and the stuck tx was never re-sent
  const { c, t, broadcasts } = stuck({ market: () => 200n * GWEI });
  t.gasPrice = 100n * GWEI;
  t.raw = rawOf(5, t.gasPrice);
  assert.equal(await unstickTx(c, t), "resent");
  assert.deepEqual(broadcasts, [t.raw], "at its fee, the ceiling");
});

Deno.test("unstickTx: a refused tx the node knows nowhere is given up; one it still holds is awaited", async () => {
  const tooBig = () => new ChainError("CHAIN_RPC_ERROR", "exceeds block gas limit");
  const gone = stuck({ market: () => 10n * GWEI, refuse: tooBig });
  assert.equal(await unstickTx(gone.c, gone.t), "refused");
  assert.match(String(gone.t.refusal), /exceeds block gas limit/);
  const held = stuck({ market: () => 10n * GWEI, refuse: tooBig, known: (h) => h === "0xfirst" });
  assert.equal(await unstickTx(held.c, held.t), "resent");
  const unreachable = stuck({ market: () => 10n * GWEI, refuse: tooBig, known: () => "unknown" });
  assert.equal(await unstickTx(unreachable.c, unreachable.t), "resent", "not known for sure: still awaited");
  const lost = stuck({
    market: () => 10n * GWEI,
    refuse: () => new ChainError("CHAIN_UNREACHABLE", "socket hang up"),
  });
  assert.equal(await unstickTx(lost.c, lost.t), "resent", "a lost reply refuses nothing");
});

Deno.test("unstickTx: replacements the node refused are not looked for, and the first version never drops out", async () => {
  let market = 20n * GWEI;
  const { c, t } = stuck({
    market: () => (market = market * 11n / 10n),
    refuse: (raw) =>
      raw === "0x0005" + (10n * GWEI).toString(16)
        ? undefined
        : new ChainError("INSUFFICIENT_FUNDS", "no funds"),
    known: (h) => h === "0xfirst",
  });
  for (let i = 0; i < MAX_HASHES + 3; i++) await unstickTx(c, t);
  // before: each refused replacement's hash was kept, and after 8 the first (still waiting) was gone
  assert.deepEqual(t.hashes, ["0xfirst"]);
});

Deno.test("unstickTx: replacements whose replies were lost are all looked for, the first one kept", async () => {
  let market = 20n * GWEI;
  const { c, t } = stuck({
    market: () => (market = market * 11n / 10n),
    refuse: () => new ChainError("CHAIN_TIMEOUT", "timed out"),
    known: () => "unknown",
  });
  for (let i = 0; i < MAX_HASHES + 3; i++) await unstickTx(c, t);
  assert.equal(t.hashes.length, MAX_HASHES);
  assert.equal(t.hashes[0], "0xfirst");
});

Deno.test("unstickTx: a replacement answered with an RPC error that is no refusal is still looked for", async () => {
  // geth's "request timed out" comes after the send may have got through: the replacement may be
  // the version waiting (a review's probe: given up, the retry mined a second heartbeat)
  const { c, t } = stuck({
    market: () => 20n * GWEI,
    refuse: (raw) =>
      raw === rawOf(5, 10n * GWEI) ? undefined : new ChainError("CHAIN_RPC_ERROR", "request timed out"),
  });
  assert.equal(await unstickTx(c, t), "resent");
  assert.equal(t.hashes.length, 3, "the first version, the last broadcast one and the replacement");
  assert.equal(t.refusal, undefined);
});

Deno.test("unstickTx: a failure before the broadcast (the gas price) gives nothing up", async () => {
  const { c, t, broadcasts } = stuck({ market: () => 10n * GWEI });
  c.provider.getGasPrice = () => Promise.reject(new ChainError("CHAIN_RPC_ERROR", "rate limit exceeded"));
  assert.equal(await unstickTx(c, t), "resent");
  assert.deepEqual(broadcasts, []);
  assert.equal(t.refusal, undefined);
});

Deno.test("unstickTx: a refused replacement leaves the versions looked for as they were", async () => {
  let market = 20n * GWEI, refuse = false;
  const { c, t } = stuck({
    market: () => (market = market * 11n / 10n),
    refuse: () =>
      refuse ? new ChainError("INSUFFICIENT_FUNDS", "no funds") : new ChainError("CHAIN_TIMEOUT", "lost"),
    known: () => "unknown",
  });
  for (let i = 0; i < MAX_HASHES; i++) await unstickTx(c, t); // replies lost: every version kept
  const kept = [...t.hashes];
  refuse = true;
  await unstickTx(c, t);
  // before: the refused one evicted an older version for good
  assert.deepEqual(t.hashes, kept);
});
