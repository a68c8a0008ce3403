import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { alibiSlopes, blockTensorNames, quantizeInt8, transpose2d } from "./block_graph.ts";
import { buildKvBlockGraph } from "./kv_block_graph.ts";
import { storedInMemory } from "./safetensors.ts";
import { parseModelConfig } from "./model_config.ts";

Deno.test("alibiSlopes: transformers' values for 8 heads and the extra odd powers for 6 heads", () => {
  assert.deepEqual(Array.from(alibiSlopes(8)), [1, 2, 3, 4, 5, 6, 7, 8].map((k) => 2 ** -k));
  const six = Array.from(alibiSlopes(6));
  // p = 4: (2^-2)^k for k = 1..4, then (2^-1)^k for k = 1, 3
  assert.deepEqual(six, [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]);
});

Deno.test("quantizeInt8: per-output-channel symmetric, transposed to [in, out], error ≤ scale/2", () => {
  const w = Float32Array.from([1, -2, 0.5, 0, 0, 0, 0.1, 0.2, -0.3]); // [3 out, 3 in]
  const { q, scale } = quantizeInt8(w, 3, 3);
  assert.deepEqual(Array.from(scale).map((s) => +s.toFixed(6)), [
    +(2 / 127).toFixed(6),
    1,
    +(0.3 / 127).toFixed(6),
  ]);
  for (let o = 0; o < 3; o++) {
    for (let i = 0; i < 3; i++) {
      assert.ok(Math.abs(q[i * 3 + o] * scale[o] - w[o * 3 + i]) <= scale[o] / 2 + 1e-7);
    }
  }
  assert.equal(q[1 * 3 + 0], -127);
  assert.deepEqual(Array.from(transpose2d(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3)), [1, 4, 2, 5, 3, 6]);
});

Deno.test("transpose2d and quantizeInt8 work in tiles: the same as element by element on sizes across tile edges", () => {
  for (const [rows, cols] of [[1, 1], [70, 131], [64, 64], [129, 3], [5, 200]]) {
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
    const t = transpose2d(w, rows, cols), { q, scale } = quantizeInt8(w, rows, cols);
    for (let r = 0; r < rows; r++) {
      let m = 0;
      for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(w[r * cols + c]));
      const s = m > 0 ? m / 127 : 1;
      assert.equal(scale[r], Math.fround(s));
      for (let c = 0; c < cols; c++) {
        assert.equal(t[c * rows + r], w[r * cols + c], `transpose ${rows}×${cols} at ${r},${c}`);
        const want = Math.max(-127, Math.min(127, Math.round(w[r * cols + c] / s)));
        assert.equal(q[c * rows + r], want + 0, `quantize ${rows}×${cols} at ${r},${c}`);
      }
    }
  }
});

Deno.test("qwen3 blocks need q_norm and k_norm of shape [head_dim]; a missing or misshapen one is named", () => {
  const cfg = parseModelConfig({
    model_type: "qwen3",
    hidden_size: 8,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 6,
    num_hidden_layers: 1,
    intermediate_size: 4,
    vocab_size: 16,
  });
  const names = blockTensorNames(cfg);
  assert.ok(names.includes("self_attn.q_norm.weight") && names.includes("self_attn.k_norm.weight"));
  const shapes: Record<string, number[]> = {
    "input_layernorm.weight": [8],
    "self_attn.q_proj.weight": [12, 8],
    "self_attn.k_proj.weight": [6, 8],
    "self_attn.v_proj.weight": [6, 8],
    "self_attn.o_proj.weight": [8, 12],
    "self_attn.q_norm.weight": [6],
    "self_attn.k_norm.weight": [6],
    "post_attention_layernorm.weight": [8],
    "mlp.gate_proj.weight": [4, 8],
    "mlp.up_proj.weight": [4, 8],
    "mlp.down_proj.weight": [8, 4],
  };
  const tensors = (override: Record<string, number[] | undefined>) =>
    new Map(
      Object.entries({ ...shapes, ...override }).filter(([, s]) => s !== undefined).map((
        [n, s],
      ) => [n, storedInMemory(s!, "F32", new Uint8Array(4 * s!.reduce((a, b) => a * b, 1)))]),
    );
  for (const format of ["fp32", "int8"] as const) buildKvBlockGraph(cfg, tensors({}), format, "float32");
  const bad = (override: Record<string, number[] | undefined>, re: RegExp) =>
    assert.throws(
      () => buildKvBlockGraph(cfg, tensors(override), "fp32", "float32"),
      (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && re.test(e.message),
    );
  bad({ "self_attn.k_norm.weight": undefined }, /self_attn\.k_norm\.weight is missing/);
  bad({ "self_attn.q_norm.weight": [8] }, /self_attn\.q_norm\.weight has shape \[8\].*\[6\]/);
});
