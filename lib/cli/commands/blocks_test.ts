import assert from "node:assert/strict";
import { ConfigError } from "../../errors.ts";
import { parseHiddenJson, parseIds, parseSpan, parseSteps } from "./blocks.ts";

const usage = (re: RegExp) => (e: unknown) =>
  e instanceof ConfigError && e.exitCode === 2 && re.test(e.message) && e.hint.length > 0;

Deno.test("blocks run: span, steps, hidden JSON and ids parsing with clear usage errors", () => {
  assert.deepEqual(parseSpan("2:5"), { start: 2, end: 5 });
  assert.throws(() => parseSpan("5:2"), usage(/"5:2"/));
  assert.throws(() => parseSpan("a:b"), usage(/a:b/));
  assert.deepEqual(parseSteps("5,1, 1"), [5, 1, 1]);
  assert.throws(() => parseSteps("5,,1"), usage(/5,,1/));
  assert.throws(() => parseSteps("0"), usage(/positive/));
  const h = parseHiddenJson({ hidden: [[[1, 2], [3, 4], [5, 6]]] }, "in.json");
  assert.deepEqual(h.shape, [1, 3, 2]);
  assert.deepEqual(Array.from(h.data), [1, 2, 3, 4, 5, 6]);
  assert.throws(
    () => parseHiddenJson({ hidden: [[[1, "x"]]] }, "in.json"),
    usage(/in.json: hidden\[0\]\[0\] holds "x"/),
  );
  assert.throws(
    () => parseHiddenJson({ hidden: [[[1, 2]], [[3, 4], [5, 6]]] }, "in.json"),
    usage(/hidden\[1\] does not have 1 tokens/),
  );
  assert.throws(() => parseHiddenJson({}, "in.json"), usage(/non-empty/));
  assert.deepEqual(parseIds("1, 2,3", "--input-ids"), { data: Int32Array.from([1, 2, 3]), shape: [1, 3] });
  assert.deepEqual(parseIds('{"input_ids": [[4, 5], [6, 7]]}', "f.json").shape, [2, 2]);
  assert.deepEqual(parseIds("[9, 8]", "f.json").shape, [1, 2]);
  assert.throws(() => parseIds('{"ids": [[1], [2, 3]]}', "f.json"), usage(/rectangular/));
  assert.throws(() => parseIds("[-1]", "f.json"), usage(/integers ≥ 0/));
});
