import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { type LlamaConfig, parseModelConfig, ropeInvFreq } from "./model_config.ts";

const llama = {
  model_type: "llama",
  hidden_size: 64,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  num_hidden_layers: 3,
  intermediate_size: 96,
  vocab_size: 300,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  eos_token_id: [1, 2],
};

const unsupported = (re: RegExp) => (e: unknown) =>
  e instanceof RuntimeError && e.code === "UNSUPPORTED_MODEL" && re.test(e.message);

Deno.test("parseModelConfig: bloom and llama fields, special tokens from generation_config", () => {
  const b = parseModelConfig({
    model_type: "bloom",
    hidden_size: 48,
    n_head: 6,
    n_layer: 2,
    vocab_size: 320,
    layer_norm_epsilon: 1e-5,
  }, { eos_token_id: 2 });
  assert.equal(b.modelType, "bloom");
  assert.equal(b.headDim, 8);
  assert.deepEqual(b.eosTokenIds, [2]);
  const l = parseModelConfig(llama) as LlamaConfig;
  assert.equal(l.numKvHeads, 2);
  assert.equal(l.headDim, 16);
  assert.deepEqual(l.eosTokenIds, [1, 2]);
  assert.equal(l.qkvBias, false);
  const q = parseModelConfig({ ...llama, model_type: "qwen2" }) as LlamaConfig;
  assert.equal(q.qkvBias, true);
  assert.equal(q.oBias, false);
  const m = parseModelConfig({
    ...llama,
    model_type: "mistral",
    sliding_window: 512,
    max_position_embeddings: 32768,
  });
  assert.equal(m.maxPositions, 512);
});

Deno.test("parseModelConfig: features that change the math and are not implemented are refused by name", () => {
  assert.throws(() => parseModelConfig({ ...llama, model_type: "gpt2" }), unsupported(/model_type = "gpt2"/));
  assert.throws(() => parseModelConfig({ ...llama, hidden_act: "gelu" }), unsupported(/hidden_act = "gelu"/));
  assert.throws(
    () => parseModelConfig({ ...llama, rope_scaling: { rope_type: "dynamic", factor: 2 } }),
    unsupported(/dynamic/),
  );
  assert.throws(
    () => parseModelConfig({ ...llama, partial_rotary_factor: 0.5 }),
    unsupported(/partial_rotary_factor/),
  );
  assert.throws(() => parseModelConfig({ ...llama, mlp_bias: true }), unsupported(/mlp_bias/));
  assert.throws(
    () =>
      parseModelConfig({
        model_type: "bloom",
        hidden_size: 48,
        n_head: 6,
        n_layer: 2,
        vocab_size: 9,
        apply_residual_connection_post_layernorm: true,
      }),
    unsupported(/apply_residual_connection_post_layernorm/),
  );
  assert.throws(
    () => parseModelConfig({ model_type: "llama" }),
    (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT",
  );
});

Deno.test("ropeInvFreq: llama3 scaling keeps high frequencies, divides low ones, smooths the middle", () => {
  const base = ropeInvFreq(parseModelConfig(llama) as LlamaConfig);
  const scaled = ropeInvFreq(parseModelConfig({
    ...llama,
    rope_scaling: {
      rope_type: "llama3",
      factor: 4,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 32,
    },
  }) as LlamaConfig);
  assert.equal(base.length, 8);
  assert.equal(scaled[0], base[0]); // wavelength 2π < 8: unchanged
  assert.ok(scaled[1] < base[1] && scaled[1] > base[1] / 4); // 8 ≤ wavelength ≤ 32: smoothed
  for (let i = 2; i < 8; i++) assert.ok(Math.abs(scaled[i] - base[i] / 4) < 1e-15); // long wavelengths: / factor
  const lin = ropeInvFreq(
    parseModelConfig({ ...llama, rope_scaling: { type: "linear", factor: 2 } }) as LlamaConfig,
  );
  lin.forEach((f, i) => assert.ok(Math.abs(f - base[i] / 2) < 1e-15));
});

/** qwen/qwen3-32b's config.json (the fields the runtime reads). */
const qwen3_32b = {
  architectures: ["Qwen3ForCausalLM"],
  attention_bias: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
  head_dim: 128,
  hidden_act: "silu",
  hidden_size: 5120,
  intermediate_size: 25600,
  max_position_embeddings: 40960,
  max_window_layers: 64,
  model_type: "qwen3",
  num_attention_heads: 64,
  num_hidden_layers: 64,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-6,
  rope_scaling: null,
  rope_theta: 1000000,
  sliding_window: null,
  tie_word_embeddings: false,
  use_sliding_window: false,
  vocab_size: 151936,
};

Deno.test("parseModelConfig: qwen3 runs as Llama family with q/k norms and its explicit head_dim", () => {
  const q = parseModelConfig(qwen3_32b, { eos_token_id: [151645, 151643] }) as LlamaConfig;
  assert.equal(q.modelType, "llama");
  assert.equal(q.sourceType, "qwen3");
  assert.equal(q.qkNorm, true);
  assert.equal(q.headDim, 128);
  assert.notEqual(q.headDim, q.hiddenSize / q.numHeads);
  assert.equal(q.numKvHeads, 8);
  assert.equal(q.ropeTheta, 1e6);
  assert.deepEqual(q.ropeScaling, { type: "default" });
  assert.equal(q.qkvBias, false);
  assert.equal(q.oBias, false);
  assert.equal(q.tieWordEmbeddings, false);
  assert.equal(q.maxPositions, 40960);
  assert.deepEqual(q.eosTokenIds, [151645, 151643]);
  assert.equal((parseModelConfig(llama) as LlamaConfig).qkNorm, false);
  // attention_bias puts biases on q, k, v and o (Qwen3Attention), tie_word_embeddings is read
  const b = parseModelConfig({
    ...qwen3_32b,
    attention_bias: true,
    tie_word_embeddings: true,
  }) as LlamaConfig;
  assert.equal(b.qkvBias, true);
  assert.equal(b.oBias, true);
  assert.equal(b.tieWordEmbeddings, true);
  // transformers' Qwen3Config default head_dim is 128, not hidden / heads
  const { head_dim: _, ...noHeadDim } = qwen3_32b;
  assert.equal(parseModelConfig(noHeadDim).headDim, 128);
});

Deno.test("parseModelConfig: qwen3 sliding windows and mixture-of-experts models are refused by name", () => {
  assert.throws(
    () => parseModelConfig({ ...qwen3_32b, use_sliding_window: true, sliding_window: 4096 }),
    unsupported(/use_sliding_window = true/),
  );
  assert.throws(
    () =>
      parseModelConfig({
        ...qwen3_32b,
        num_hidden_layers: 2,
        layer_types: ["full_attention", "sliding_attention"],
      }),
    unsupported(/layer_types = \["full_attention","sliding_attention"\]/),
  );
  parseModelConfig({ ...qwen3_32b, num_hidden_layers: 2, layer_types: ["full_attention", "full_attention"] });
  for (const type of ["qwen3_moe", "qwen3_5_moe"]) {
    const err = (() => {
      try {
        parseModelConfig({ ...qwen3_32b, model_type: type });
      } catch (e) {
        return e as RuntimeError;
      }
    })();
    assert.ok(err instanceof RuntimeError && err.code === "UNSUPPORTED_MODEL");
    assert.match(err.message, new RegExp(`model_type = "${type}"`));
    assert.match(err.hint ?? "", /mixture-of-experts/);
  }
});

Deno.test("parseModelConfig: sizes beyond any model, and values that make NaN, are refused naming the field", () => {
  const bad = (field: string, value: unknown, re: RegExp) =>
    assert.throws(
      () => parseModelConfig({ ...llama, [field]: value }),
      (e: unknown) => e instanceof RuntimeError && e.code === "BAD_CHECKPOINT" && re.test(e.message),
      `${field} = ${value}`,
    );
  bad("head_dim", 65536, /head_dim 65536 is above 1024/);
  bad("hidden_size", 1e12, /hidden_size 1000000000000 is above 65536/);
  bad("num_hidden_layers", 2 ** 32, /num_hidden_layers 4294967296 is above 1024/);
  bad("vocab_size", 2 ** 40, /vocab_size .* is above 4194304/);
  bad("rope_theta", -1, /rope_theta -1 is outside \(1, 1000000000000\)/);
  bad("rope_theta", 0, /rope_theta 0 is outside/);
  bad("rms_norm_eps", -1, /rms_norm_eps -1 is outside \(0, 1\)/);
  assert.throws(
    () => parseModelConfig({ ...llama, model_type: "mistral", sliding_window: 0 }),
    /sliding_window must be a positive integer, got 0/,
  );
  assert.throws(
    () => parseModelConfig({ ...llama, rope_scaling: { rope_type: "linear", factor: 1e-320 } }),
    unsupported(/rope_scaling\.factor/),
  );
  // null (no window) and a window are fine
  const m = parseModelConfig({ ...llama, model_type: "mistral", sliding_window: null }) as LlamaConfig;
  assert.ok(m.maxPositions! > 0);
  const w = parseModelConfig({ ...llama, model_type: "mistral", sliding_window: 64 }) as LlamaConfig;
  assert.equal(w.maxPositions, 64);
});
