import assert from "node:assert/strict";
import { ConfigError } from "../../errors.ts";
import { flagNumber } from "./generate.ts";

Deno.test("generate flags: decimal numbers only, integers exact, in range", () => {
  assert.equal(flagNumber("max-new-tokens", "32", { int: true, min: 1 }), 32);
  assert.equal(flagNumber("temperature", "0.8", { min: 0 }), 0.8);
  assert.equal(flagNumber("temperature", "1e-1", { min: 0 }), 0.1);
  assert.equal(flagNumber("seed", undefined, { int: true }), undefined);
  for (
    const [flag, value, o] of [
      ["max-new-tokens", "0x10", { int: true }],
      ["seed", "99999999999999999999", { int: true }],
      ["top-k", "1e9", { int: true }],
      ["temperature", "0b1", {}],
      ["temperature", "", {}],
      ["max-new-tokens", "0", { int: true, min: 1 }],
    ] as const
  ) {
    assert.throws(
      () => flagNumber(flag, value, o),
      (e: unknown) =>
        e instanceof ConfigError && e.code === "CLI_FLAG_INVALID" &&
        e.message.includes(JSON.stringify(value)),
      `${flag} ${value}`,
    );
  }
});
