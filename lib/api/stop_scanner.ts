/**
 * Finds stop strings in streamed text. Text that might be the start of a stop string is held back
 * until it is known not to be, so a stop string never leaks into the output, even when it arrives
 * split over several tokens.
 * @module
 */

export class StopScanner {
  readonly #stops: readonly string[];
  #held = "";
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Feeds new text; returns the part that is safe to emit now. After a stop, returns "" forever. */
  push(text: string): string {
    if (this.#stopped) return "";
    if (this.#stops.length === 0) return text;
    const buf = this.#held + text;
    let cut = -1;
    for (const s of this.#stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.#stopped = true;
      this.#held = "";
      return buf.slice(0, cut);
    }
    // Hold back the longest suffix of buf that is a proper prefix of some stop string.
    let keep = 0;
    for (const s of this.#stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > keep; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          keep = k;
          break;
        }
      }
    }
    this.#held = buf.slice(buf.length - keep);
    return buf.slice(0, buf.length - keep);
  }

  /** At the end of generation: the held-back text (it turned out not to be a stop string). */
  flush(): string {
    if (this.#stopped) return "";
    const out = this.#held;
    this.#held = "";
    return out;
  }
}
