/**
 * The decoded text of a growing token sequence, at a cost per token that does not grow with the
 * sequence: a generation of thousands of tokens no longer decodes all of them at every step.
 *
 * Each new token decodes a short window: a few committed tokens of context, then the tokens not
 * yet committed. The text grows by what the window adds beyond its context's own decode (the
 * context makes a decoder's start-of-text rules, e.g. SentencePiece's leading space, apply the
 * same way to both). Where the window does not begin with its context's text — a decoder's
 * cleanup reached across the junction — the whole sequence is decoded instead, once. A text that
 * ends in an incomplete character (U+FFFD) is not committed: the next token decodes it again
 * with the bytes that complete it.
 * @module
 */

/** Tokens of context before the uncommitted ones in each window. */
const CONTEXT_TOKENS = 4;

export class IncrementalText {
  readonly #decode: (ids: readonly number[]) => string;
  readonly #ids: number[] = [];
  /** Decoded text of `#ids[0, #done)`. */
  #text = "";
  #done = 0;
  #fullDecodes = 0;

  constructor(decode: (ids: readonly number[]) => string) {
    this.#decode = decode;
  }

  /** Adds a token; returns the decoded text of every token so far. */
  push(id: number): string {
    this.#ids.push(id);
    const from = Math.max(0, this.#done - CONTEXT_TOKENS);
    const context = from < this.#done ? this.#decode(this.#ids.slice(from, this.#done)) : "";
    const window = this.#decode(this.#ids.slice(from));
    let text: string;
    if (window.startsWith(context)) text = this.#text + window.slice(context.length);
    else {
      this.#fullDecodes++;
      text = this.#decode(this.#ids);
    }
    if (!text.endsWith("\ufffd")) {
      this.#text = text;
      this.#done = this.#ids.length;
    }
    return text;
  }

  /** How often a window did not extend its context and the whole sequence was decoded. */
  get fullDecodes(): number {
    return this.#fullDecodes;
  }
}
