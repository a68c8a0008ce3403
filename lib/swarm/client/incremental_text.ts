/**
 * The decoded text of a growing token sequence, at a cost per token that does not grow with the
 * sequence: a generation of thousands of tokens no longer decodes all of them at every step.
 *
 * Each new token decodes a short window: committed tokens of context (at least a few, and at
 * least a few characters of text, so that a decoder's start-of-text rules — SentencePiece's
 * leading space, say — apply to the context in both decodes), then the tokens not yet committed.
 * The text grows by what the window adds beyond its context's own decode. Where the window does
 * not begin with its context's text (a decoder's cleanup reached across the junction), or no
 * context with text is near, the whole sequence is decoded instead.
 *
 * A text that ends in an incomplete character (U+FFFD) is not committed: the next token decodes
 * it again with the bytes that complete it. Once more than a few tokens wait, the text up to the
 * last four tokens with bytes is committed where the full text begins with it: a UTF-8 character
 * is at most four bytes, so what comes later cannot change it.
 * @module
 */

/** Committed tokens in a window's context, at the least. */
const CONTEXT_TOKENS = 4;
/** Characters of text a window's context has, at the least. */
const CONTEXT_CHARS = 4;
/** Tokens a context may reach back for its characters before the whole sequence is decoded. */
const MAX_CONTEXT_TOKENS = 64;
/** Uncommitted tokens after which the text before the last four tokens with bytes is committed. */
const MAX_PENDING_TOKENS = 8;

const INCOMPLETE = "\ufffd";

export class IncrementalText {
  readonly #decode: (ids: readonly number[]) => string;
  readonly #ids: number[] = [];
  /** Decoded text of `#ids[0, #done)`. */
  #text = "";
  #done = 0;
  #fullDecodes = 0;

  constructor(decode: (ids: readonly number[]) => string) {
    this.#decode = (ids) => ids.length ? decode(ids) : "";
  }

  /** Adds a token; returns the decoded text of every token so far. */
  push(id: number): string {
    this.#ids.push(id);
    const n = this.#ids.length;
    const text = this.#textTo(n);
    if (!text.endsWith(INCOMPLETE)) this.#commit(text, n);
    else if (n - this.#done > MAX_PENDING_TOKENS) {
      // the position before the last four tokens that decode to something (a skipped special
      // token has no bytes, a byte token decodes alone to U+FFFD)
      let mid = n, withBytes = 0;
      while (mid > this.#done && withBytes < 4) if (this.#decode([this.#ids[--mid]]) !== "") withBytes++;
      if (withBytes === 4 && mid > this.#done) {
        const head = this.#textTo(mid);
        if (text.startsWith(head)) this.#commit(head, mid);
      }
    }
    return text;
  }

  /** How often a window could not be used and the whole sequence was decoded. */
  get fullDecodes(): number {
    return this.#fullDecodes;
  }

  #commit(text: string, upTo: number): void {
    this.#text = text;
    this.#done = upTo;
  }

  /** The text of `#ids[0, m)` (m ≥ `#done`). */
  #textTo(m: number): string {
    const done = this.#done;
    let from = Math.max(0, done - CONTEXT_TOKENS);
    let context = this.#decode(this.#ids.slice(from, done));
    while (context.length < CONTEXT_CHARS && from > 0) {
      if (done - from >= MAX_CONTEXT_TOKENS) return this.#whole(m);
      from = Math.max(0, from - CONTEXT_TOKENS);
      context = this.#decode(this.#ids.slice(from, done));
    }
    const window = this.#decode(this.#ids.slice(from, m));
    return window.startsWith(context) ? this.#text + window.slice(context.length) : this.#whole(m);
  }

  #whole(m: number): string {
    this.#fullDecodes++;
    return this.#decode(this.#ids.slice(0, m));
  }
}
