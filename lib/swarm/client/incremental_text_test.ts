import assert from "node:assert/strict";
import { tokenizerFromJson } from "../../runtime/hf_tokenizer.ts";
import { buildTokenizer, qwenTokenizerFiles } from "../../../tests/helpers/tokenizer_fixture.ts";
import { IncrementalText } from "./incremental_text.ts";
import { SeededRandom } from "./seeded_random.ts";

const TEXT = "The quick brown fox — jumps over the lazy dog, naïve café 東京 🙂🙂. and then\n\n  a  b ";

/** Pushes `ids` one by one and checks the text against a full decode after every token. */
function follow(decode: (ids: readonly number[]) => string, ids: readonly number[]) {
  const windows: number[] = [];
  const inc = new IncrementalText((w) => {
    windows.push(w.length);
    return decode(w);
  });
  for (let i = 0; i < ids.length; i++) {
    const calls = windows.length;
    const got = inc.push(ids[i]);
    const want = decode(ids.slice(0, i + 1));
    assert.equal(got, want, `after ${i + 1} tokens (${JSON.stringify(want.slice(-12))})`);
    windows.splice(0, calls);
  }
  return { inc, longest: Math.max(...windows) };
}

Deno.test("IncrementalText: equal to a full decode after every token, byte-level BPE tokenizers", () => {
  const qwen = qwenTokenizerFiles();
  const bloom = buildTokenizer({ specialsFirst: true, specials: ["<unk>", "<s>", "</s>", "<pad>"] });
  for (
    const tok of [tokenizerFromJson(qwen.tokenizerJson, qwen.tokenizerConfig), tokenizerFromJson(bloom.json)]
  ) {
    const decode = (ids: readonly number[]) => tok.decode(ids);
    const ids = tok.encode(TEXT.repeat(20), { addSpecialTokens: false });
    assert.ok(ids.length > 1000);
    follow(decode, ids);
    // any ids: special tokens (skipped), bytes that never form a character, characters cut anywhere
    const rnd = new SeededRandom(7);
    follow(decode, Array.from({ length: 3000 }, () => Math.floor(rnd.next() * tok.vocabSize)));
  }
});

Deno.test("IncrementalText: a decode's cost per token stays bounded as the text grows", () => {
  const qwen = qwenTokenizerFiles();
  const tok = tokenizerFromJson(qwen.tokenizerJson, qwen.tokenizerConfig);
  const ids = tok.encode(TEXT.repeat(40), { addSpecialTokens: false });
  const seen: number[] = [];
  const inc = new IncrementalText((w) => {
    seen.push(w.length);
    return tok.decode(w);
  });
  for (const id of ids) inc.push(id);
  assert.ok(ids.length > 2000);
  assert.equal(inc.fullDecodes, 0);
  // 4 tokens of context, the new one, and the few bytes of a character still incomplete
  assert.ok(Math.max(...seen) <= 8, `longest window ${Math.max(...seen)} tokens`);
});

Deno.test("IncrementalText: where a decoder's cleanup reaches across the window, the whole text is decoded", () => {
  // word pieces joined, then " ." and " ," tightened (transformers' clean_up_tokenization_spaces)
  const pieces = ["Hello", " ", ".", ",", " world", "!", "▁Hi", "é"];
  const decode = (ids: readonly number[]) =>
    ids.map((i) => pieces[i]).join("").replace(/ ([.,!])/g, "$1").replace(/^▁/, "").replaceAll("▁", " ");
  const rnd = new SeededRandom(3);
  const ids = Array.from({ length: 2000 }, () => Math.floor(rnd.next() * pieces.length));
  const { inc } = follow(decode, ids);
  assert.ok(inc.fullDecodes > 0, "the junction case happened and was decoded whole");
  assert.ok(inc.fullDecodes < ids.length / 4, `${inc.fullDecodes} full decodes`);
});
