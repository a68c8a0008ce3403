/**
 * Settings that look like plumise's but are none of them: a `PLUMISE_*` name in the environment or
 * in `.env` that the schema does not know, or a `.env` key one or two letters away from a known
 * name (`API_PROT`). They would be ignored without a word; each gets a warning, with the name it
 * most likely meant. Other names (another program's, a Python node's leftovers) pass in silence.
 * @module
 */
import { SCHEMA } from "./schema.ts";

/** Names plumise reads outside the schema: install.sh's. */
const OTHER_NAMES = new Set(["PLUMISE_INSTALL_DIR", "PLUMISE_RELEASE_URL", "PLUMISE_REPO"]);
const KNOWN = new Set([...SCHEMA.flatMap((s) => (s.env ? [s.env] : [])), ...OTHER_NAMES]);

/** One warning per unknown setting, naming where it is and the likely name it meant. */
export function unknownSettingWarnings(
  env: Readonly<Record<string, string | undefined>>,
  dotenv: Readonly<Record<string, string | undefined>>,
): string[] {
  const out: string[] = [];
  for (
    const [where, names] of [["the environment", Object.keys(env)], [".env", Object.keys(dotenv)]] as const
  ) {
    for (const name of names) {
      if (KNOWN.has(name)) continue;
      const near = nearest(name);
      if (!name.startsWith("PLUMISE_") && !(where === ".env" && near)) continue;
      out.push(
        `${name} in ${where} is not a plumise setting and is ignored${near ? `: did you mean ${near}?` : ""}`,
      );
    }
  }
  return out;
}

/** The known name within two edits of `name`, the closest first; undefined when none is. */
function nearest(name: string): string | undefined {
  let best: string | undefined, bestD = 3;
  for (const k of KNOWN) {
    if (Math.abs(k.length - name.length) >= bestD) continue;
    const d = editDistance(name, k, bestD);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

/** Levenshtein distance of `a` and `b`, or `cap` when it is at least that. */
function editDistance(a: string, b: string, cap: number): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    if (Math.min(...row) >= cap) return cap;
    prev = row;
  }
  return Math.min(prev[b.length], cap);
}
