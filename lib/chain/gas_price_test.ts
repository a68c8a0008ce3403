import assert from "node:assert/strict";
import { ChainError } from "../errors.ts";
import { SCHEMA } from "../config/schema.ts";
import { DEFAULT_MAX_GAS_PRICE_WEI, newTxPrice, stuckTxPrice } from "./gas_price.ts";

const GWEI = 10n ** 9n;

Deno.test("gas price: a new tx offers a fifth above the market, cut at the ceiling", () => {
  assert.equal(newTxPrice(10n * GWEI, 100n * GWEI, "heartbeat"), 12n * GWEI + 1n);
  assert.equal(newTxPrice(90n * GWEI, 100n * GWEI, "heartbeat"), 100n * GWEI);
  assert.equal(newTxPrice(100n * GWEI, 100n * GWEI, "heartbeat"), 100n * GWEI);
  assert.equal(newTxPrice(0n, 100n * GWEI, "heartbeat"), 1n);
});

Deno.test("gas price: a market above the ceiling is refused with the values and a hint", () => {
  assert.throws(() => newTxPrice(100n * GWEI + 1n, 100n * GWEI, "claim"), (err: unknown) => {
    assert.ok(err instanceof ChainError);
    assert.equal(err.code, "GAS_PRICE_TOO_HIGH");
    assert.match(
      err.message,
      /^claim transaction not sent: .* 100000000001 wei is above MAX_GAS_PRICE_WEI 100000000000$/,
    );
    assert.match(err.hint, /MAX_GAS_PRICE_WEI/);
    assert.deepEqual(err.details, {
      label: "claim",
      gasPriceWei: "100000000001",
      maxGasPriceWei: "100000000000",
    });
    return true;
  });
});

Deno.test("gas price: a stuck tx bumps a quarter (or to the market's offer), never past the ceiling", () => {
  const cap = 100n * GWEI;
  // a quarter more than it offered
  assert.equal(stuckTxPrice(40n * GWEI, 10n * GWEI, cap, true), 50n * GWEI + 1n);
  // the market's offer when that is higher
  assert.equal(stuckTxPrice(10n * GWEI, 50n * GWEI, cap, true), 60n * GWEI + 1n);
  // at the ceiling: no higher, whatever the market says (the same tx is broadcast again)
  assert.equal(stuckTxPrice(90n * GWEI, 80n * GWEI, cap, true), cap);
  assert.equal(stuckTxPrice(cap, 10_000n * GWEI, cap, true), cap);
  // a tx priced above a lowered ceiling keeps its price (a replacement must not offer less)
  assert.equal(stuckTxPrice(120n * GWEI, 10n * GWEI, cap, true), 120n * GWEI);
});

Deno.test("gas price: out of bumps, a stuck tx follows the market only when it is a tenth higher", () => {
  const cap = 100n * GWEI;
  assert.equal(stuckTxPrice(20n * GWEI, 10n * GWEI, cap, false), 20n * GWEI);
  assert.equal(
    stuckTxPrice(20n * GWEI, 18n * GWEI, cap, false),
    20n * GWEI,
    "offer 21.6 is not a tenth above 20",
  );
  assert.equal(stuckTxPrice(20n * GWEI, 30n * GWEI, cap, false), 36n * GWEI + 1n);
  assert.equal(stuckTxPrice(20n * GWEI, 500n * GWEI, cap, false), cap);
});

Deno.test("gas price: MAX_GAS_PRICE_WEI's default in the config schema is the queue's", () => {
  const spec = SCHEMA.find((s) => s.env === "MAX_GAS_PRICE_WEI");
  assert.equal(spec?.default, DEFAULT_MAX_GAS_PRICE_WEI);
});
