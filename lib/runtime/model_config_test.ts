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
