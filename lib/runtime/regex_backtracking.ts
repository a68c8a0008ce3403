/**
 * Catastrophic backtracking in a checkpoint's tokenizer regexes (`Split` pre-tokenizers and
 * normalizers in tokenizer.json): the tokenizer runs them on every prompt, on the API's thread, and
 * a pattern that repeats a group which itself repeats or alternates (`(a|aa)+$`, `(\w+)*x`) takes
 * time exponential in the input (41 characters: 6.9 s). Released tokenizers' patterns repeat
 * character classes only, so such a group is refused when the tokenizer loads
 * (docs/security.md, "Model downloads").
 * @module
 */

interface Group {
  /** A quantifier or an alternation somewhere inside. */
  varies: boolean;
}

/** Whether `pattern` repeats (`*`, `+`, `{n,}`, `{n,m}` with m > 1) a group that repeats or alternates. */
export function repeatsVaryingGroup(pattern: string): boolean {
  const stack: Group[] = [{ varies: false }];
  const top = () => stack[stack.length - 1];
  /** The length of a repeating quantifier at `i`, 0 when there is none. */
  const repeatAt = (i: number): number => {
    const c = pattern[i];
    if (c === "*" || c === "+") return 1;
    if (c !== "{") return 0;
    const m = /^\{(\d*)(,(\d*))?\}/.exec(pattern.slice(i));
    if (!m || (m[1] === "" && m[2] === undefined)) return 0;
    const max = m[2] === undefined ? Number(m[1]) : m[3] === "" ? Infinity : Number(m[3]);
    return max > 1 ? m[0].length : 0;
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      i++; // an escaped character (\p{L} and \u{…} are one atom: their braces follow)
      if ((pattern[i] === "p" || pattern[i] === "P" || pattern[i] === "u") && pattern[i + 1] === "{") {
        i = pattern.indexOf("}", i);
        if (i < 0) return false;
      }
      if (repeatAt(i + 1)) top().varies = true;
      continue;
    }
    if (c === "[") {
      // a character class: to its unescaped closing bracket (a ] first in it is literal)
      let j = i + 1;
      if (pattern[j] === "^") j++;
      if (pattern[j] === "]") j++;
      for (; j < pattern.length && pattern[j] !== "]"; j++) if (pattern[j] === "\\") j++;
      i = j;
      if (repeatAt(i + 1)) top().varies = true;
      continue;
    }
    if (c === "(") {
      stack.push({ varies: false });
      continue;
    }
    if (c === ")") {
      const g = stack.length > 1 ? stack.pop()! : { varies: false };
      const repeated = repeatAt(i + 1) > 0;
      if (repeated && g.varies) return true;
      if (repeated || g.varies) top().varies = true;
      continue;
    }
    if (c === "|") top().varies = true;
    else if (repeatAt(i)) top().varies = true;
  }
  return false;
}

/** Every regex pattern of a tokenizer.json's pre-tokenizer and normalizer (nested sequences too). */
export function tokenizerRegexes(tokenizerJson: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (v: unknown, depth: number) => {
    if (depth > 16 || typeof v !== "object" || v === null) return;
    if (Array.isArray(v)) return v.forEach((x) => walk(x, depth + 1));
    const o = v as Record<string, unknown>;
    const p = o.pattern as { Regex?: unknown } | undefined;
    if (p && typeof p === "object" && typeof p.Regex === "string") out.push(p.Regex);
    for (const k of ["pretokenizers", "normalizers"]) walk(o[k], depth + 1);
  };
  walk(tokenizerJson.pre_tokenizer, 0);
  walk(tokenizerJson.normalizer, 0);
  return out;
}
