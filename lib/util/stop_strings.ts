/**
 * Stop strings in generated text, the one implementation both the swarm client's generation loop
 * (lib/swarm/client/stop_condition.ts) and the HTTP API use: where the earliest stop string
 * starts, and how much of the text's end must be held back because it might be the start of one,
 * so that a stop string never leaks into streamed output, even when it arrives split over tokens.
 * @module
 */

/** Index in `text` of the earliest occurrence of any of `stops`, or -1. Empty stops never match. */
export function firstStopIndex(text: string, stops: readonly string[]): number {
  let cut = -1;
  for (const s of stops) {
    if (s.length === 0) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut;
}

/** Length of the longest suffix of `text` that is a proper prefix of one of `stops`. */
export function heldBackLength(text: string, stops: readonly string[]): number {
  let hold = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > hold; n--) {
      if (text.endsWith(s.slice(0, n))) {
        hold = n;
        break;
      }
    }
  }
  return hold;
}

/**
 * Stop strings over streamed pieces of text: `push` returns what is safe to emit now and holds
 * back a possible start of a stop string until it is known not to be one.
 */
export class StopScanner {
  readonly #stops: readonly string[];
  #held = "";
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /** True once a stop string was found. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Feeds new text; returns the part that is safe to emit now. After a stop, returns "" forever. */
  push(text: string): string {
    if (this.#stopped) return "";
    if (this.#stops.length === 0) return text;
    const buf = this.#held + text;
    const cut = firstStopIndex(buf, this.#stops);
    if (cut >= 0) {
      this.#stopped = true;
      this.#held = "";
      return buf.slice(0, cut);
    }
    const keep = heldBackLength(buf, this.#stops);
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
