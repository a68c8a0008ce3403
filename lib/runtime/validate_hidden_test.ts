import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import type { HiddenStates } from "./types.ts";
import { validateHidden } from "./validate_hidden.ts";

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
