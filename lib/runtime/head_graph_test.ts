import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { headTensorNames } from "./head_graph.ts";
import { parseModelConfig } from "./model_config.ts";

const llama = {
  model_type: "llama",
  hidden_size: 8,
  num_attention_heads: 2,
  num_hidden_layers: 1,
  intermediate_size: 8,
  vocab_size: 10,
};

Deno.test("headTensorNames: tied and untied LM heads, BLOOM prefixes", () => {
  assert.equal(
    headTensorNames(parseModelConfig({ ...llama, tie_word_embeddings: true }), "model.", () => false).lm_head,
    "model.embed_tokens.weight",
  );
  assert.equal(
    headTensorNames(parseModelConfig(llama), "model.", (n) => n === "lm_head.weight").lm_head,
    "lm_head.weight",
  );
  assert.throws(
    () => headTensorNames(parseModelConfig(llama), "model.", () => false),
    (e: unknown) => e instanceof RuntimeError && /lm_head/.test(e.message),
  );
  const bloom = parseModelConfig({
    model_type: "bloom",
    hidden_size: 8,
    n_head: 2,
    n_layer: 1,
    vocab_size: 10,
  });
  const names = headTensorNames(bloom, "transformer.", () => true);
  assert.equal(names.embed_ln_w, "transformer.word_embeddings_layernorm.weight");
  assert.equal(names.lm_head, "transformer.word_embeddings.weight");
});
