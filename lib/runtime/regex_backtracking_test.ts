import assert from "node:assert/strict";
import { QWEN_SPLIT_REGEX } from "../../tests/helpers/tokenizer_fixture.ts";
import { repeatsVaryingGroup, tokenizerRegexes } from "./regex_backtracking.ts";

Deno.test("regex backtracking: released tokenizers' patterns pass", () => {
  for (
    const p of [
      QWEN_SPLIT_REGEX,
      "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", // GPT-2
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", // Llama 3
      " ?[^(\\s|[.,!?…。，、।۔،])]+", // BLOOM
      "(?:\\r\\n)+",
      "(ab){2}",
      "[)(]+",
    ]
  ) {
    assert.equal(repeatsVaryingGroup(p), false, p);
  }
});

Deno.test("regex backtracking: a repeated group that repeats or alternates is found", () => {
  for (
    const p of ["(a|aa)+$", "(\\w+)*x", "(?:a+)+", "((ab)*c)*", "(a|b){2,}", "(x\\p{L}+){1,5}", "([a-z]+)+"]
  ) {
    assert.equal(repeatsVaryingGroup(p), true, p);
  }
});

Deno.test("tokenizerRegexes: the Split patterns of pre-tokenizers and normalizers, sequences included", () => {
  const tj = {
    normalizer: { type: "Replace", pattern: { Regex: "a+" }, content: "" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "Split", pattern: { Regex: "(a|aa)+$" } }, { type: "ByteLevel" }, {
        type: "Split",
        pattern: { String: " " },
      }],
    },
  };
  assert.deepEqual(tokenizerRegexes(tj).sort(), ["(a|aa)+$", "a+"]);
});
