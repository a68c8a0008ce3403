/**
 * An independent float64 reference of the BLOOM and Llama-family (Qwen2, Qwen3) block math and
 * heads, written plainly from the transformers source (no ONNX, no runtime code), for the parity
 * tests. It reads the raw config.json fields itself and takes the fixture's exact tensors.
 * Sequences always start at position 0 (full-sequence computation).
 * @module
 */
import type { Checkpoint } from "./checkpoint_fixture.ts";

/** [B][T][H] in float64. */
export type Seq = number[][][];

export function toSeq(data: Float32Array, b: number, t: number, h: number): Seq {
  const out: Seq = [];
  for (let i = 0; i < b; i++) {
    const rows: number[][] = [];
    for (let j = 0; j < t; j++) rows.push(Array.from(data.subarray((i * t + j) * h, (i * t + j + 1) * h)));
    out.push(rows);
  }
  return out;
}

export function fromSeq(s: Seq): Float32Array {
  return Float32Array.from(s.flat(2));
}

/** Max |a − b| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} ≠ ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function tensor(ck: Checkpoint, name: string): Float32Array {
  const t = ck.tensors.get(name);
  if (!t) throw new Error(`fixture has no ${name}`);
  return t.data;
}

/** y = W x + b for W [out, in]. */
function matvec(w: Float32Array, out: number, inp: number, x: number[], b?: Float32Array): number[] {
  const y = new Array<number>(out);
  for (let o = 0; o < out; o++) {
    let s = b ? b[o] : 0;
    const base = o * inp;
    for (let i = 0; i < inp; i++) s += w[base + i] * x[i];
    y[o] = s;
  }
  return y;
}

function layerNorm(x: number[], w: Float32Array, b: Float32Array, eps: number): number[] {
  const n = x.length;
  const mean = x.reduce((a, v) => a + v, 0) / n;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
  const inv = 1 / Math.sqrt(variance + eps);
  return x.map((v, i) => (v - mean) * inv * w[i] + b[i]);
}

function rmsNorm(x: number[], w: Float32Array, eps: number): number[] {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  const inv = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => v * inv * w[i]);
}

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
const silu = (x: number) => x / (1 + Math.exp(-x));

function softmax(s: number[]): number[] {
  const m = Math.max(...s);
  const e = s.map((v) => Math.exp(v - m));
  const z = e.reduce((a, v) => a + v, 0);
  return e.map((v) => v / z);
}

/** BLOOM block `layer` over a full sequence. */
export function bloomBlock(ck: Checkpoint, layer: number, x: Seq): Seq {
  const c = ck.config as Record<string, number>;
  const H = c.hidden_size, n = c.n_head, d = H / n, eps = c.layer_norm_epsilon;
  const p = ck.blockPrefix(layer);
  const T = (s: string) => tensor(ck, p + s);
  // ALiBi slopes (transformers build_alibi_tensor).
  const cp = 2 ** Math.floor(Math.log2(n));
  const slopes: number[] = [];
  for (let k = 1; k <= cp; k++) slopes.push(Math.pow(2 ** (-8 / cp), k));
  for (let k = 1; slopes.length < n; k += 2) slopes.push(Math.pow(2 ** (-4 / cp), k));
  return x.map((rows) => {
    const L = rows.length;
    const ln1 = rows.map((r) => layerNorm(r, T("input_layernorm.weight"), T("input_layernorm.bias"), eps));
    const qkv = ln1.map((r) =>
      matvec(
        T("self_attention.query_key_value.weight"),
        3 * H,
        H,
        r,
        T("self_attention.query_key_value.bias"),
      )
    );
    // per head h: q = qkv[h*3d : h*3d+d], k = next d, v = next d
    const attnOut = rows.map(() => new Array<number>(H).fill(0));
    for (let h = 0; h < n; h++) {
      const q = qkv.map((r) => r.slice(h * 3 * d, h * 3 * d + d));
      const k = qkv.map((r) => r.slice(h * 3 * d + d, h * 3 * d + 2 * d));
      const v = qkv.map((r) => r.slice(h * 3 * d + 2 * d, h * 3 * d + 3 * d));
      for (let i = 0; i < L; i++) {
        const scores: number[] = [];
        for (let j = 0; j < L; j++) {
          if (j > i) scores.push(-Infinity);
          else scores.push(q[i].reduce((a, qv, z) => a + qv * k[j][z], 0) / Math.sqrt(d) + slopes[h] * j);
        }
        const pr = softmax(scores);
        for (let z = 0; z < d; z++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += pr[j] * v[j][z];
          attnOut[i][h * d + z] = s;
        }
      }
    }
    return rows.map((r, i) => {
      const dense = matvec(
        T("self_attention.dense.weight"),
        H,
        H,
        attnOut[i],
        T("self_attention.dense.bias"),
      );
      const a = r.map((v, z) => v + dense[z]);
      const ln2 = layerNorm(a, T("post_attention_layernorm.weight"), T("post_attention_layernorm.bias"), eps);
      const up = matvec(T("mlp.dense_h_to_4h.weight"), 4 * H, H, ln2, T("mlp.dense_h_to_4h.bias")).map(
        geluTanh,
      );
      const down = matvec(T("mlp.dense_4h_to_h.weight"), H, 4 * H, up, T("mlp.dense_4h_to_h.bias"));
      return a.map((v, z) => v + down[z]);
    });
  });
}

/** RoPE inverse frequencies, written from transformers' _compute_default / linear / llama3 rope parameters. */
export function referenceInvFreq(config: Record<string, unknown>): number[] {
  const H = config.hidden_size as number, n = config.num_attention_heads as number;
  const d = (config.head_dim as number | undefined) ?? (config.model_type === "qwen3" ? 128 : H / n);
  const base = (config.rope_theta as number | undefined) ?? 10000;
  let inv: number[] = [];
  for (let i = 0; i < d; i += 2) inv.push(1 / base ** (i / d));
  const rs = config.rope_scaling as Record<string, number | string> | null | undefined;
  const type = rs ? (rs.rope_type ?? rs.type) : "default";
  if (type === "linear") inv = inv.map((f) => f / (rs!.factor as number));
  if (type === "llama3") {
    const factor = rs!.factor as number,
      low = rs!.low_freq_factor as number,
      high = rs!.high_freq_factor as number;
    const old = rs!.original_max_position_embeddings as number;
    const lowWl = old / low, highWl = old / high;
    inv = inv.map((f) => {
      const wl = 2 * Math.PI / f;
      const scaled = wl > lowWl ? f / factor : f;
      const smooth = (old / wl - low) / (high - low);
      const smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
      const medium = !(wl < highWl) && !(wl > lowWl);
      return medium ? smoothed : scaled;
    });
  }
  return inv;
}

/**
 * Llama-family block `layer` over a full sequence (GQA via repeat_kv, rotate_half RoPE; Qwen2's
 * q/k/v biases; Qwen3's per-head q/k RMSNorm before RoPE).
 */
export function llamaBlock(ck: Checkpoint, layer: number, x: Seq): Seq {
  const c = ck.config as Record<string, unknown>;
  const H = c.hidden_size as number, n = c.num_attention_heads as number;
  const nkv = (c.num_key_value_heads as number | undefined) ?? n;
  const d = (c.head_dim as number | undefined) ?? (c.model_type === "qwen3" ? 128 : H / n);
  const I = c.intermediate_size as number, eps = c.rms_norm_eps as number;
  const qwen3 = c.model_type === "qwen3";
  const bias = c.attention_bias === true || c.model_type === "qwen2";
  const oBias = c.attention_bias === true && c.model_type !== "qwen2";
  const p = ck.blockPrefix(layer);
  const T = (s: string) => tensor(ck, p + s);
  const B = (s: string) => bias ? tensor(ck, p + s) : undefined;
  const inv = referenceInvFreq(c);
  // Qwen3Attention: q_norm / k_norm, an RMSNorm over head_dim of each head, before RoPE.
  const headNorm = (vec: number[], which: "q" | "k") =>
    qwen3 ? rmsNorm(vec, T(`self_attn.${which}_norm.weight`), eps) : vec;
  const ropeAt = (vec: number[], pos: number) => {
    const out = vec.slice();
    for (let i = 0; i < d / 2; i++) {
      const ang = pos * inv[i];
      const cos = Math.cos(ang), sin = Math.sin(ang);
      out[i] = vec[i] * cos - vec[i + d / 2] * sin;
      out[i + d / 2] = vec[i + d / 2] * cos + vec[i] * sin;
    }
    return out;
  };
  return x.map((rows) => {
    const L = rows.length;
    const h1 = rows.map((r) => rmsNorm(r, T("input_layernorm.weight"), eps));
    const q = h1.map((r) => matvec(T("self_attn.q_proj.weight"), n * d, H, r, B("self_attn.q_proj.bias")));
    const k = h1.map((r) => matvec(T("self_attn.k_proj.weight"), nkv * d, H, r, B("self_attn.k_proj.bias")));
    const v = h1.map((r) => matvec(T("self_attn.v_proj.weight"), nkv * d, H, r, B("self_attn.v_proj.bias")));
    const attn = rows.map(() => new Array<number>(n * d).fill(0));
    for (let h = 0; h < n; h++) {
      const kh = Math.floor(h / (n / nkv));
      const qh = q.map((r, i) => ropeAt(headNorm(r.slice(h * d, h * d + d), "q"), i));
      const khs = k.map((r, i) => ropeAt(headNorm(r.slice(kh * d, kh * d + d), "k"), i));
      const vh = v.map((r) => r.slice(kh * d, kh * d + d));
      for (let i = 0; i < L; i++) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j++) {
          scores.push(qh[i].reduce((a, qv, z) => a + qv * khs[j][z], 0) / Math.sqrt(d));
        }
        const pr = softmax(scores);
        for (let z = 0; z < d; z++) {
          let s = 0;
          for (let j = 0; j <= i; j++) s += pr[j] * vh[j][z];
          attn[i][h * d + z] = s;
        }
      }
    }
    return rows.map((r, i) => {
      const o = matvec(
        T("self_attn.o_proj.weight"),
        H,
        n * d,
        attn[i],
        oBias ? T("self_attn.o_proj.bias") : undefined,
      );
      const hr = r.map((val, z) => val + o[z]);
      const h2 = rmsNorm(hr, T("post_attention_layernorm.weight"), eps);
      const gate = matvec(T("mlp.gate_proj.weight"), I, H, h2);
      const up = matvec(T("mlp.up_proj.weight"), I, H, h2);
      const down = matvec(T("mlp.down_proj.weight"), H, I, gate.map((gv, z) => silu(gv) * up[z]));
      return hr.map((val, z) => val + down[z]);
    });
  });
}

/** Blocks [start, end) of either family over a full sequence. */
export function referenceSpan(ck: Checkpoint, start: number, end: number, x: Seq): Seq {
  const bloom = ck.config.model_type === "bloom";
  let y = x;
  for (let i = start; i < end; i++) y = bloom ? bloomBlock(ck, i, y) : llamaBlock(ck, i, y);
  return y;
}

/** Head: token ids [B][T] → hidden [B][T][H] (BLOOM adds the embedding LayerNorm). */
export function referenceEmbed(ck: Checkpoint, ids: number[][]): Seq {
  const c = ck.config as Record<string, number>;
  const H = c.hidden_size;
  const bloom = ck.config.model_type === "bloom";
  const pre = ck.tensors.has("transformer.word_embeddings.weight") ? "transformer." : "";
  const emb = tensor(ck, bloom ? `${pre}word_embeddings.weight` : "model.embed_tokens.weight");
  return ids.map((row) =>
    row.map((id) => {
      const e = Array.from(emb.subarray(id * H, (id + 1) * H));
      return bloom
        ? layerNorm(
          e,
          tensor(ck, `${pre}word_embeddings_layernorm.weight`),
          tensor(ck, `${pre}word_embeddings_layernorm.bias`),
          c.layer_norm_epsilon,
        )
        : e;
    })
  );
}

/** Head: last hidden [B][H] → logits [B][vocab] (final norm + LM head, tied or not). */
export function referenceLogits(ck: Checkpoint, last: number[][]): number[][] {
  const c = ck.config as Record<string, unknown>;
  const H = c.hidden_size as number, V = c.vocab_size as number;
  const bloom = c.model_type === "bloom";
  const pre = ck.tensors.has("transformer.word_embeddings.weight") ? "transformer." : "";
  return last.map((h) => {
    const nrm = bloom
      ? layerNorm(
        h,
        tensor(ck, `${pre}ln_f.weight`),
        tensor(ck, `${pre}ln_f.bias`),
        c.layer_norm_epsilon as number,
      )
      : rmsNorm(h, tensor(ck, "model.norm.weight"), c.rms_norm_eps as number);
    const head = bloom
      ? tensor(ck, `${pre}word_embeddings.weight`)
      : c.tie_word_embeddings === true
      ? tensor(ck, "model.embed_tokens.weight")
      : tensor(ck, "lm_head.weight");
    return matvec(head, V, H, nrm);
  });
}
