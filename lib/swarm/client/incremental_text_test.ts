import assert from "node:assert/strict";
import { tokenizerFromJson } from "../../runtime/hf_tokenizer.ts";
import type { Tokenizer } from "../../runtime/types.ts";
import {
  buildTokenizer,
  bytesToUnicode,
  qwenTokenizerFiles,
  sentencePieceTokenizerJson,
} from "../../../tests/helpers/tokenizer_fixture.ts";
import { IncrementalText } from "./incremental_text.ts";
import { SeededRandom } from "./seeded_random.ts";

const TEXT = "The quick brown fox — jumps over the lazy dog, naïve café 東京 🙂🙂. and then\n\n  a  b ";

/** Pushes `ids` one by one and checks the text against a full decode after every token. */
function follow(decode: (ids: readonly number[]) => string, ids: readonly number[]) {
  let longest = 0;
  const inc = new IncrementalText((w) => {
    longest = Math.max(longest, w.length);
    return decode(w);
  });
  for (let i = 0; i < ids.length; i++) {
    const got = inc.push(ids[i]);
    const want = decode(ids.slice(0, i + 1));
    assert.equal(got, want, `after ${i + 1} tokens [${ids.slice(Math.max(0, i - 8), i + 1)}]`);
  }
  return { inc, longest };
}

/** Byte-level BPE tokenizers (Qwen's and BLOOM's shape), each with the token of every single byte. */
const byteLevel = (): { tok: Tokenizer; byte: (b: number) => number }[] => {
  const qwen = qwenTokenizerFiles();
  const bloom = buildTokenizer({ specialsFirst: true, specials: ["<unk>", "<s>", "</s>", "<pad>"] });
  const chars = bytesToUnicode();
  const byteOf = (ids: ReadonlyMap<string, number>) => (b: number) => ids.get(chars[b])!;
  return [
    { tok: tokenizerFromJson(qwen.tokenizerJson, qwen.tokenizerConfig), byte: byteOf(qwen.ids) },
    { tok: tokenizerFromJson(bloom.json), byte: byteOf(bloom.ids) },
  ];
};

/** A SentencePiece-style tokenizer (tests/helpers/tokenizer_fixture.ts) and its ids by piece. */
function sentencePiece(decoder: "strip" | "metaspace", cleanup: boolean) {
  const { json, ids } = sentencePieceTokenizerJson(decoder);
  return {
    tok: tokenizerFromJson(json, { clean_up_tokenization_spaces: cleanup }),
    id: (t: string) => ids.get(t)!,
  };
}

/** Ids in runs: words, runs of skipped specials, lone and whole UTF-8 byte sequences. */
function runs(
  rnd: SeededRandom,
  n: number,
  word: () => number,
  special: number,
  byte: (b: number) => number,
) {
  const ids: number[] = [];
  while (ids.length < n) {
    const r = rnd.next();
    if (r < 0.5) ids.push(word());
    else if (r < 0.65) { for (let k = 1 + Math.floor(rnd.next() * 7); k > 0; k--) ids.push(special); }
    else if (r < 0.85) { for (const b of new TextEncoder().encode("東🙂é")) ids.push(byte(b)); }
    else ids.push(byte(0x80 + Math.floor(rnd.next() * 0x80)));
  }
  return ids;
}

Deno.test("IncrementalText: equal to a full decode after every token, byte-level BPE tokenizers", () => {
  for (const { tok, byte } of byteLevel()) {
    const decode = (ids: readonly number[]) => tok.decode(ids);
    const ids = tok.encode(TEXT.repeat(20), { addSpecialTokens: false });
    assert.ok(ids.length > 1000);
    follow(decode, ids);
    // any ids: special tokens (skipped), bytes that never form a character, characters cut anywhere
    const rnd = new SeededRandom(7);
    follow(decode, Array.from({ length: 3000 }, () => Math.floor(rnd.next() * tok.vocabSize)));
    // runs of id 3 (BLOOM's <pad>, skipped) and of UTF-8 bytes, whole or stray
    follow(decode, runs(rnd, 3000, () => Math.floor(rnd.next() * tok.vocabSize), 3, byte));
    // 4 skipped tokens between "Hello " and "." (cleaned up to "Hello." in BLOOM's decode)
    const enc = (t: string) => tok.encode(t, { addSpecialTokens: false });
    follow(decode, [...enc("Hello "), 3, 3, 3, 3, ...enc(".")]);
  }
});

Deno.test("IncrementalText: equal to a full decode after every token, SentencePiece decoders with byte fallback", () => {
  for (const decoder of ["strip", "metaspace"] as const) {
    for (const cleanup of [false, true]) {
      const { tok, id } = sentencePiece(decoder, cleanup);
      const decode = (ids: readonly number[]) => tok.decode(ids);
      // a context of skipped specials carries no text: the start-of-text rules must not reach "▁world"
      follow(decode, ["▁Hello", "<ctl>", "<ctl>", "<ctl>", "<ctl>", "▁world"].map(id));
      follow(decode, ["▁Hello", "▁do", "▁n", "<ctl>", "<ctl>", "<ctl>", "'t"].map(id));
      follow(decode, ["▁Hello", "▁", "<ctl>", "<ctl>", "<ctl>", "<ctl>", "."].map(id));
      const words = ["▁Hello", "▁world", "▁.", ".", ",", "▁n", "'t", "▁do", "é", "▁東京", "▁"].map(id);
      const rnd = new SeededRandom(11);
      follow(
        decode,
        runs(rnd, 2000, () => words[Math.floor(rnd.next() * words.length)], id("<ctl>"), (b) => 4 + b),
      );
    }
  }
});

Deno.test("IncrementalText: a decode's cost per token stays bounded as the text grows", () => {
  const [{ tok, byte }] = byteLevel();
  const ids = tok.encode(TEXT.repeat(40), { addSpecialTokens: false });
  const { inc, longest } = follow((w) => tok.decode(w), ids);
  assert.ok(ids.length > 2000);
  assert.equal(inc.fullDecodes, 0);
  // a context of 4 tokens (8 where 4 hold less than 4 characters), the new token, and the bytes of a
  // character still incomplete: nothing that grows with the 2000 tokens before
  assert.ok(longest <= 16, `longest window ${longest} tokens`);
  // a text that keeps ending in an incomplete character (a lone continuation byte, again and again)
  assert.equal(tok.decode([byte(0x80)]), "\ufffd");
  const stuck = follow((w) => tok.decode(w), [...new Array(1500).fill(byte(0x80)), ...ids.slice(0, 50)]);
  assert.ok(stuck.longest <= 16, `longest window ${stuck.longest} tokens`);
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
