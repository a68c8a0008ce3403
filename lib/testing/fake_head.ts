/**
 * Test helpers: a deterministic `ClientHead` (embedding table and a projection to logits that
 * depend on the whole hidden vector) and a character-level `Tokenizer` over a small alphabet.
 * @module
 */
import type { ClientHead, HeadInfo, HiddenStates, Logits, TokenIds, Tokenizer } from "../runtime/types.ts";

export const ALPHABET = "_abcdefghijklmnopqrstuvwxyz .,!?";

export class FakeHead implements ClientHead {
  readonly info: HeadInfo;
  readonly #emb: Float32Array;
  readonly #proj: Float32Array;
  embeds = 0;

  constructor(hiddenSize = 16, vocabSize = ALPHABET.length, seed = 3) {
    this.info = {
      modelId: "fake/model",
      modelType: "llama",
      hiddenSize,
      vocabSize,
      numBlocks: 9,
      specialTokens: { eos: [0] },
    };
    let s = seed;
    const rnd = () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return s / 2 ** 32 * 2 - 1;
    };
    this.#emb = Float32Array.from({ length: vocabSize * hiddenSize }, rnd);
    this.#proj = Float32Array.from({ length: vocabSize * hiddenSize }, rnd);
  }
  start(): Promise<void> {
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  embed(ids: TokenIds): Promise<HiddenStates> {
    this.embeds++;
    const h = this.info.hiddenSize;
    const [b, t] = ids.shape;
    const out = new Float32Array(b * t * h);
    ids.data.forEach((id, k) => {
      if (id < 0 || id >= this.info.vocabSize) throw new RangeError(`token id ${id} outside the vocabulary`);
      out.set(this.#emb.subarray(id * h, (id + 1) * h), k * h);
    });
    return Promise.resolve({ data: out, shape: [b, t, h] });
  }
  logits(last: { data: Float32Array; shape: readonly [number, number] }): Promise<Logits> {
    const [b, h] = last.shape;
    const v = this.info.vocabSize;
    const out = new Float32Array(b * v);
    for (let r = 0; r < b; r++) {
      for (let i = 0; i < v; i++) {
        let acc = 0;
        for (let j = 0; j < h; j++) acc += this.#proj[i * h + j] * Math.sin(500 * last.data[r * h + j]);
        out[r * v + i] = acc;
      }
    }
    return Promise.resolve({ data: out, shape: [b, v] });
  }
}

/** Character-level tokenizer: id i ↔ ALPHABET[i]; id 0 ("_") is EOS and decodes to nothing. */
export class FakeTokenizer implements Tokenizer {
  readonly vocabSize = ALPHABET.length;
  readonly eos = [{ id: 0, text: "_" }];
  encode(text: string): number[] {
    return [...text].map((c) => {
      const i = ALPHABET.indexOf(c);
      if (i < 0) throw new RangeError(`character ${JSON.stringify(c)} is not in the fake alphabet`);
      return i;
    });
  }
  decode(ids: readonly number[]): string {
    return ids.filter((i) => i !== 0).map((i) => ALPHABET[i]).join("");
  }
}
