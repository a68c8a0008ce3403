/**
 * Small helpers over `[B, T, H]` hidden states: concatenation and slicing along the token axis.
 * @module
 */
import { SwarmError } from "../../errors.ts";
import type { Hidden } from "./types.ts";

/** Builds a Hidden, checking that `data.length` matches the shape. */
export function hidden(data: Float32Array, shape: readonly [number, number, number]): Hidden {
  const [b, t, h] = shape;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new SwarmError(
        "BAD_SHAPE",
        `hidden shape must be non-negative integers, got [${shape.join(", ")}]`,
        {
          hint: "hidden states are [batch, tokens, hiddenSize]",
        },
      );
    }
  }
  if (data.length !== b * t * h) {
    throw new SwarmError(
      "BAD_SHAPE",
      `hidden data has ${data.length} floats but shape [${shape.join(", ")}] needs ${b * t * h}`,
      { hint: "hidden states are [batch, tokens, hiddenSize], row-major float32" },
    );
  }
  return { data, shape: [b, t, h] };
}

/** Concatenates along the token axis; all parts must share batch and hidden size. */
export function concatTokens(parts: readonly Hidden[]): Hidden {
  if (parts.length === 0) throw new SwarmError("BAD_SHAPE", "cannot concatenate zero hidden tensors");
  if (parts.length === 1) return parts[0];
  const [b, , h] = parts[0].shape;
  let total = 0;
  for (const p of parts) {
    if (p.shape[0] !== b || p.shape[2] !== h) {
      throw new SwarmError(
        "BAD_SHAPE",
        `cannot concatenate [${p.shape.join(", ")}] to [${b}, *, ${h}]`,
        { hint: "every step of a session must have the same batch size and hidden size" },
      );
    }
    total += p.shape[1];
  }
  const out = new Float32Array(b * total * h);
  if (b === 1) {
    let off = 0;
    for (const p of parts) {
      out.set(p.data, off);
      off += p.data.length;
    }
  } else {
    for (let bi = 0; bi < b; bi++) {
      let off = bi * total * h;
      for (const p of parts) {
        const n = p.shape[1] * h;
        out.set(p.data.subarray(bi * n, (bi + 1) * n), off);
        off += n;
      }
    }
  }
  return { data: out, shape: [b, total, h] };
}

/** Tokens `[from, to)` of every batch row. Zero-copy when B = 1. */
export function sliceTokens(x: Hidden, from: number, to: number): Hidden {
  const [b, t, h] = x.shape;
  if (!(Number.isInteger(from) && Number.isInteger(to) && 0 <= from && from <= to && to <= t)) {
    throw new SwarmError("BAD_SHAPE", `token slice [${from}, ${to}) is outside [0, ${t})`);
  }
  const n = to - from;
  if (b === 1) return { data: x.data.subarray(from * h, to * h), shape: [1, n, h] };
  const out = new Float32Array(b * n * h);
  for (let bi = 0; bi < b; bi++) {
    out.set(x.data.subarray((bi * t + from) * h, (bi * t + to) * h), bi * n * h);
  }
  return { data: out, shape: [b, n, h] };
}

/** Total tokens over a list of chunks. */
export function tokenCount(parts: readonly Hidden[]): number {
  let n = 0;
  for (const p of parts) n += p.shape[1];
  return n;
}
