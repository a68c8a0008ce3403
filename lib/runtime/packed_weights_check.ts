/**
 * Whether onnxruntime, having packed a block's shared weight matrices (kv_graphs.ts), still reads the
 * arrays they came from. onnxruntime asks that a shared initializer outlive its sessions; in fact a
 * session drops its reference once every node that uses the initializer has packed it, and from then
 * on reads only its packed copy. Rather than rely on that, the engine checks it per block at load:
 * it runs the joined and the split graphs on a probe (one and two rows, a prompt then a decode step
 * after it), fills a sample of every array with garbage, runs them again, and gives the values back.
 * The same bits, from finite outputs on which the joined and the split graphs agree, mean nothing
 * reads the arrays: their tensors are released and the arrays go with the graphs' garbage, so the
 * weights take their packed bytes only. Anything else keeps them alive with the sessions (twice the
 * bytes, still correct). See docs/architecture.md, "Block graphs and in-place KV caches".
 * @module
 */
import type { BlockSessions } from "./kv_graphs.ts";
import { qkvWidth } from "./kv_block_graph.ts";
import type { ModelConfig } from "./model_config.ts";
import { type OrtApi, type OrtTensor, TensorType } from "./native/ort_api.ts";

/** What a probe of a block runs on. */
export interface BlockProbe {
  /** Prompt tokens (then one decode step, where `positions` leaves room for it). */
  readonly tokens: number;
  /** Most positions a probe may reach (the RoPE tables' length). */
  readonly positions: number;
  /**
   * Caches for `rows` rows of `length` positions, and the inputs after them for `s` new tokens after
   * `past`; every new tensor goes to `own`.
   */
  readonly caches: (
    rows: number,
    length: number,
    own: OrtTensor[],
  ) => { k: OrtTensor; v: OrtTensor; extra: (past: number, s: number) => OrtTensor[] };
}

/** Values poisoned per array, at most: enough that any read of it shows. */
const SAMPLE = 4096;

/** See the module comment. Returns true when the arrays were let go. */
export function checkWeightsPacked(
  api: OrtApi,
  cfg: ModelConfig,
  s: BlockSessions,
  probe: BlockProbe,
): boolean {
  if (!s.weights.length) return true;
  const before = probeBlock(api, cfg, s, probe);
  if (!agree(before)) return false;
  const saved: { at: number; value: number }[][] = [];
  let after: Float32Array[];
  try {
    for (const w of s.weights) {
      const a = w.data as Float32Array | Int8Array, step = Math.max(1, Math.floor(a.length / SAMPLE));
      const kept: { at: number; value: number }[] = [];
      for (let at = 0; at < a.length; at += step) {
        kept.push({ at, value: a[at] });
        a[at] = a instanceof Float32Array ? NaN : a[at] === 77 ? -77 : 77;
      }
      saved.push(kept);
    }
    after = probeBlock(api, cfg, s, probe);
  } finally {
    saved.forEach((kept, i) => {
      const a = s.weights[i].data as Float32Array | Int8Array;
      for (const { at, value } of kept) a[at] = value;
    });
  }
  const same = before.every((x, i) => x.every((v, j) => Object.is(v, after[i][j])));
  if (!same) return false;
  for (const w of s.weights) w.release();
  s.weights = [];
  return true;
}

/** Finite outputs, the joined graph's (even entries) within float noise of the split graphs' (odd). */
function agree(outs: Float32Array[]): boolean {
  for (let i = 0; i < outs.length; i += 2) {
    const a = outs[i], b = outs[i + 1];
    for (let j = 0; j < a.length; j++) {
      if (!Number.isFinite(a[j]) || !Number.isFinite(b[j])) return false;
      if (Math.abs(a[j] - b[j]) > 1e-3 * (1 + Math.abs(b[j]))) return false;
    }
  }
  return true;
}

/**
 * The joined and the split graphs' outputs, in pairs: per row count (1, 2), a prompt of the probe's
 * tokens from fresh caches, then one decode step after it.
 */
function probeBlock(api: OrtApi, cfg: ModelConfig, s: BlockSessions, probe: BlockProbe): Float32Array[] {
  const H = cfg.hiddenSize, A = cfg.numHeads * cfg.headDim, W = qkvWidth(cfg), n = probe.tokens;
  const outs: Float32Array[] = [];
  for (const rows of [1, 2]) {
    const own: OrtTensor[] = [];
    const t = (tokens: number, w: number, fill?: (j: number) => number) => {
      const a = new Float32Array(rows * tokens * w);
      if (fill) { for (let j = 0; j < a.length; j++) a[j] = fill(j); }
      const x = api.tensor(a, [rows, tokens, w], TensorType.FLOAT);
      own.push(x);
      return x;
    };
    try {
      const steps = n + 1 <= probe.positions ? [[0, n], [n, 1]] : [[0, n]];
      const length = steps.length === 2 ? n + 1 : n;
      const joined = probe.caches(rows, length, own), split = probe.caches(rows, length, own);
      for (const [past, tokens] of steps) {
        const hidden = t(tokens, H, (j) => Math.sin(j * 0.37 + past));
        const y1 = t(tokens, H), y2 = t(tokens, H), qkv = t(tokens, W), attn = t(tokens, A);
        const e1 = joined.extra(past, tokens), e2 = split.extra(past, tokens);
        api.run(s.block, [hidden, joined.k, joined.v, ...e1], [y1, joined.k, joined.v]);
        api.run(s.proj, [hidden], [qkv]);
        api.run(s.attn, [qkv, split.k, split.v, ...e2], [attn, split.k, split.v]);
        api.run(s.out, [hidden, attn], [y2]);
        outs.push(y1.data as Float32Array, y2.data as Float32Array);
      }
    } finally {
      for (const x of own) x.release();
    }
  }
  return outs;
}
