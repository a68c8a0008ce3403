/**
 * `checkJsonShape`: a linear scan of JSON text (as UTF-8 bytes) that bounds how deep it nests and
 * how many values it holds, run before `JSON.parse` on anything that came off the wire. Parsing is
 * linear in the bytes, but what the parse builds is not free: a 4 MiB header of nested or empty
 * arrays allocates millions of objects (hundreds of ms), and every later step that walks the
 * value pays again. The scan costs one pass that mostly jumps from quote to quote
 * (`Uint8Array.indexOf`) and stops at the first bound crossed. It does not validate the JSON:
 * what it lets through, `JSON.parse` still checks.
 * @module
 */
import { WireError } from "../errors.ts";

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;
const OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;

/** Bounds of a JSON text: nesting depth and values (containers and elements). */
export interface JsonShapeLimits {
  readonly maxDepth: number;
  readonly maxValues: number;
}

function tooComplex(what: string, why: string): WireError {
  return new WireError("BAD_FRAME", `${what} ${why}`, {
    hint:
      "the peer sent a malformed or hostile message; check that both sides speak the same protocol version",
    details: { field: what },
  });
}

/**
 * Throws `BAD_FRAME` when the JSON text in `bytes` nests deeper than `maxDepth` or holds more
 * than `maxValues` values (counted as container openings plus commas, an upper bound of the
 * values less one). `what` names the text in the message ("frame header").
 */
export function checkJsonShape(bytes: Uint8Array, limits: JsonShapeLimits, what: string): void {
  const n = bytes.length;
  let depth = 0, values = 0;
  for (let i = 0; i < n; i++) {
    const c = bytes[i];
    if (c === QUOTE) {
      // to the closing quote: the next quote not escaped by an odd run of backslashes
      let j = i;
      for (;;) {
        j = bytes.indexOf(QUOTE, j + 1);
        if (j < 0) return; // unterminated: JSON.parse reports it
        let k = j - 1;
        while (bytes[k] === BACKSLASH) k--;
        if ((j - 1 - k) % 2 === 0) break;
      }
      i = j;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limits.maxDepth) throw tooComplex(what, `nests deeper than ${limits.maxDepth} levels`);
      if (++values > limits.maxValues) throw tooComplex(what, `holds more than ${limits.maxValues} values`);
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    } else if (c === COMMA) {
      if (++values > limits.maxValues) throw tooComplex(what, `holds more than ${limits.maxValues} values`);
    }
  }
}
