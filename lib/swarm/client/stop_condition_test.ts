import assert from "node:assert/strict";
import { ConfigError } from "../../errors.ts";
import { StopCondition } from "./stop_condition.ts";

Deno.test("EOS ends generation; the EOS token is not part of the text", () => {
  const s = new StopCondition({ eosTokenIds: [2, 7], maxNewTokens: 10 });
  assert.equal(s.isEos(7), true);
  assert.deepEqual(s.check(5, 1, "hi"), { text: "hi", emittable: 2 });
  assert.equal(s.check(7, 2, "hi").reason, "eos");
});

Deno.test("max tokens ends generation at exactly maxNewTokens", () => {
  const s = new StopCondition({ maxNewTokens: 3 });
  assert.equal(s.check(1, 2, "ab").reason, undefined);
  assert.equal(s.check(1, 3, "abc").reason, "max_tokens");
  assert.throws(
    () => new StopCondition({ maxNewTokens: 0 }),
    (e) => e instanceof ConfigError && /got 0/.test(e.message),
  );
});

Deno.test("stop strings cut the text; partial matches are held back while streaming", () => {
  const s = new StopCondition({ stopStrings: ["\nUser:", "###"], maxNewTokens: 100 });
  assert.deepEqual(s.check(1, 1, "Hello"), { text: "Hello", emittable: 5 });
  assert.deepEqual(
    s.check(1, 2, "Hello\nUs"),
    { text: "Hello\nUs", emittable: 5 },
    "'\\nUs' could start a stop string",
  );
  assert.deepEqual(s.check(1, 3, "Hello\nUsual"), { text: "Hello\nUsual", emittable: 11 });
  assert.deepEqual(s.check(1, 4, "Hello\nUser: hi"), { reason: "stop_string", text: "Hello", emittable: 5 });
  assert.deepEqual(s.check(1, 5, "a##"), { text: "a##", emittable: 1 });
  assert.equal(s.check(1, 6, "x###\nUser:").text, "x", "the earliest stop string wins");
  assert.throws(() => new StopCondition({ stopStrings: [""], maxNewTokens: 1 }), /non-empty/);
});
