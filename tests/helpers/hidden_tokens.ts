/**
 * Test helpers over `[B, T, H]` hidden states: tokens `[from, to)` of every row, and
 * concatenation along the token axis (to feed a sequence step by step and compare with one pass).
 * @module
 */
import type { HiddenStates } from "../../lib/runtime/types.ts";

export function slice(h: HiddenStates, from: number, to: number): HiddenStates {
  const [b, t, hh] = h.shape;
  const out = new Float32Array(b * (to - from) * hh);
  for (let r = 0; r < b; r++) {
    out.set(h.data.subarray((r * t + from) * hh, (r * t + to) * hh), r * (to - from) * hh);
  }
  return { data: out, shape: [b, to - from, hh] };
}

export function concat(parts: HiddenStates[]): HiddenStates {
  const [b, , hh] = parts[0].shape;
  const t = parts.reduce((n, p) => n + p.shape[1], 0);
  const out = new Float32Array(b * t * hh);
  let off = 0;
  for (const p of parts) {
    const pt = p.shape[1];
    for (let r = 0; r < b; r++) out.set(p.data.subarray(r * pt * hh, (r + 1) * pt * hh), (r * t + off) * hh);
    off += pt;
  }
  return { data: out, shape: [b, t, hh] };
}
