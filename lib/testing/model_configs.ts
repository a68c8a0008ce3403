/**
 * Test data: the sizes of real models' config.json (the fields the estimates and graphs read), for
 * tests that reason about real sizes without their checkpoints.
 * @module
 */

export const BLOOM_560M = {
  model_type: "bloom",
  hidden_size: 1024,
  n_layer: 24,
  n_head: 16,
  vocab_size: 250880,
  torch_dtype: "float16",
};
export const LLAMA_8B = {
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 14336,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  torch_dtype: "bfloat16",
  tie_word_embeddings: false,
};

/** qwen/qwen3-32b: 64 query heads of 128 on a hidden size of 5120 (the q projection is not square). */
export const QWEN3_32B = {
  model_type: "qwen3",
  hidden_size: 5120,
  intermediate_size: 25600,
  num_hidden_layers: 64,
  num_attention_heads: 64,
  num_key_value_heads: 8,
  head_dim: 128,
  vocab_size: 151936,
  torch_dtype: "bfloat16",
  tie_word_embeddings: false,
};
