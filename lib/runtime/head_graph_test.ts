import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { buildEmbedGraph, buildLogitsGraph, headTensorNames } from "./head_graph.ts";
import { DataType } from "./onnx_graph.ts";
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

Deno.test("buildEmbedGraph keeps a 16-bit table in float16 (when it fits); buildLogitsGraph int8 quantizes", () => {
  const cfg = parseModelConfig({ ...llama, tie_word_embeddings: true });
  const table = Float32Array.from({ length: 80 }, (_, i) => (i - 40) / 64);
  const heads = (fileDtype: string, data = table) =>
    new Map([
      ["embed", { shape: [10, 8], data, fileDtype }],
      ["norm_w", { shape: [8], data: new Float32Array(8).fill(1) }],
      ["lm_head", { shape: [10, 8], data }],
    ]);
  const embedType = (t: ReturnType<typeof heads>) => buildEmbedGraph(cfg, t).matrices()[0].type;
  assert.equal(embedType(heads("F16")), DataType.FLOAT16);
  assert.equal(embedType(heads("BF16")), DataType.FLOAT16);
  assert.equal(embedType(heads("F32")), DataType.FLOAT, "a float32 file stays exact");
  const big = table.slice();
  big[3] = 70_000; // past float16's range
  assert.equal(embedType(heads("BF16", big)), DataType.FLOAT);
  assert.equal(buildEmbedGraph(cfg, heads("F16")).weightBytes, 80 * 2);

  assert.equal(buildLogitsGraph(cfg, heads("F16")).matrices()[0].type, DataType.FLOAT);
  const q = buildLogitsGraph(cfg, heads("F16"), "int8").matrices();
  assert.deepEqual(q.map((m) => [m.type, m.dims]), [[DataType.INT8, [8, 10]]]);
});
