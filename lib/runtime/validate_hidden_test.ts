import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import type { HiddenStates } from "./types.ts";
import { validateHidden, validateStep } from "./validate_hidden.ts";

const badInput = (re: RegExp) => (e: unknown) =>
  e instanceof RuntimeError && e.code === "BAD_INPUT" && re.test(e.message) && e.hint.length > 0;

Deno.test("validateHidden: accepts well-formed tensors and names the problem otherwise", () => {
  validateHidden({ data: new Float32Array(12), shape: [1, 3, 4] }, 4, 1);
  assert.throws(
    () => validateHidden({ data: new Float32Array(12), shape: [1, 3, 4] }, 5),
    badInput(/hidden size 4 .* 5/),
  );
  assert.throws(
    () => validateHidden({ data: new Float32Array(12), shape: [1, 3, 4] }, 4, 2),
    badInput(/batch 1 .* 2/),
  );
  assert.throws(
    () => validateHidden({ data: new Float32Array(11), shape: [1, 3, 4] }, 4),
    badInput(/11 values/),
  );
  assert.throws(
    () => validateHidden({ data: new Float32Array(12), shape: [3, 4] } as unknown as HiddenStates, 4),
    badInput(/\[3, 4\]/),
  );
  assert.throws(
    () => validateHidden({ data: [1, 2] } as unknown as HiddenStates, 4),
    badInput(/Float32Array/),
  );
  const inf = new Float32Array(4);
  inf[2] = Infinity;
  assert.throws(() => validateHidden({ data: inf, shape: [1, 1, 4] }, 4), badInput(/Infinity.*index 2/));
});

Deno.test("validateStep: rollback range, maxLength, hypoIds", () => {
  const failure = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof RuntimeError);
      return `${err.code}: ${err.message}`;
    }
    return "ok";
  };
  assert.deepEqual(validateStep([2, 1, 4], 5, 8, {}), { position: 5 });
  assert.deepEqual(validateStep([2, 3, 4], 5, 8, { startFromPosition: 2, hypoIds: [1, 0] }), {
    position: 2,
    hypoIds: [1, 0],
  });
  assert.match(
    failure(() => validateStep([1, 1, 4], 5, 8, { startFromPosition: 6 })),
    /^BAD_INPUT: startFromPosition 6 is outside \[0, 5\]/,
  );
  assert.match(
    failure(() => validateStep([1, 4, 4], 5, 8, {})),
    /^TOO_LONG: step of 4 tokens at position 5 exceeds the session's maxLength 8/,
  );
  assert.match(
    failure(() => validateStep([2, 1, 4], 0, 8, { hypoIds: [0, 2] })),
    /^BAD_INPUT: hypoIds \[0, 2\] must have 2 integers in \[0, 2\)/,
  );
});
