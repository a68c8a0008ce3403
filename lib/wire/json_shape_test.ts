import assert from "node:assert/strict";
import { WireError } from "../errors.ts";
import { checkJsonShape } from "./json_shape.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const limits = { maxDepth: 3, maxValues: 5 };

Deno.test("checkJsonShape: depth and values within bounds pass; brackets and commas inside strings do not count", () => {
  for (
    const ok of [
      `{"a":[1,{"b":2}]}`,
      `"[[[[[,,,,,,]]]]"`,
      `{"a":"\\"[[[[,,,,,,"}`,
      `{"a":"\\\\","b":[1]}`,
      `[1,2,3,4,5]`,
      `"unterminated [[[[[[`,
    ]
  ) checkJsonShape(bytes(ok), limits, "header");
});

Deno.test("checkJsonShape: too deep or too many values is BAD_FRAME naming the bound", () => {
  const cases: Array<[string, RegExp]> = [
    ["[[[[1]]]]", /header nests deeper than 3 levels/],
    [`{"a":{"b":{"c":{}}}}`, /nests deeper than 3/],
    ["[1,2,3,4,5,6,7]", /holds more than 5 values/],
    [`{"a":"\\\\",` + `"b":[[[[1]]]]}`, /nests deeper/],
  ];
  for (const [text, re] of cases) {
    assert.throws(
      () => checkJsonShape(bytes(text), limits, "header"),
      (e) => e instanceof WireError && e.code === "BAD_FRAME" && re.test(e.message) && e.hint.length > 0,
      text,
    );
  }
});
