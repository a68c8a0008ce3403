/**
 * A weight matrix read a few rows at a time from the checkpoint's bytes as stored (F32, F16,
 * BF16), so that building a graph never holds a whole matrix in float32 when the graph does not
 * (an int8 block's weights came from float32 arrays of eight times their size, whose first touch
 * cost more than the rest of the load; docs/benchmarks.md, "Loading blocks and the client head").
 * Each `read` returns rows in a scratch array that the next `read` of the same matrix overwrites.
 * @module
 */
import { type StoredTensor, toFloat32 } from "./safetensors.ts";

/** A `[rows, cols]` matrix read a few rows at a time. */
export interface Rows {
  readonly rows: number;
  readonly cols: number;
  /** Rows [r0, r1) in float32, row-major; valid until the next `read`. */
  read(r0: number, r1: number): Float32Array;
}

/** Keeps one float32 scratch array, grown as needed (a fresh one per read would fault its pages in each time). */
function scratch(): (n: number) => Float32Array {
  let buf = new Float32Array(0);
  return (n) => {
    if (buf.length < n) buf = new Float32Array(n);
    return buf.subarray(0, n);
  };
}

/** A stored `[rows, cols]` tensor as `Rows` (`name` for errors: an unsupported dtype names it). */
export function storedRows(x: StoredTensor, rows: number, cols: number, name = "tensor"): Rows {
  const size = x.byteLength / (rows * cols), take = scratch();
  let raw = new Uint8Array(0);
  return {
    rows,
    cols,
    read(r0, r1) {
      const out = take((r1 - r0) * cols), from = r0 * cols * size, to = r1 * cols * size;
      let bytes: Uint8Array;
      if (x.bytes) bytes = x.bytes.subarray(from, to);
      else {
        if (raw.length < to - from) raw = new Uint8Array(to - from);
        bytes = raw.subarray(0, to - from);
        x.readInto(from, bytes);
      }
      toFloat32(x.dtype, bytes, name, out);
      return out;
    },
  };
}

/** Rows of several matrices of the same width, one after the other. */
export function concatRows(parts: readonly Rows[]): Rows {
  const cols = parts[0].cols, take = scratch();
  const starts: number[] = [];
  let rows = 0;
  for (const p of parts) {
    if (p.cols !== cols) throw new RangeError(`concatRows: widths ${cols} and ${p.cols} differ`);
    starts.push(rows);
    rows += p.rows;
  }
  return {
    rows,
    cols,
    read(r0, r1) {
      const out = take((r1 - r0) * cols);
      parts.forEach((p, i) => {
        const a = Math.max(r0, starts[i]), b = Math.min(r1, starts[i] + p.rows);
        if (a < b) out.set(p.read(a - starts[i], b - starts[i]), (a - r0) * cols);
      });
      return out;
    },
  };
}

/** Row `r` of the result is row `order[r]` of `src`. */
export function pickRows(src: Rows, order: readonly number[]): Rows {
  const cols = src.cols, take = scratch();
  return {
    rows: order.length,
    cols,
    read(r0, r1) {
      const out = take((r1 - r0) * cols);
      for (let r = r0; r < r1; r++) out.set(src.read(order[r], order[r] + 1), (r - r0) * cols);
      return out;
    },
  };
}
