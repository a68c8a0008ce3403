import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { quantizeInt8 } from "./block_graph.ts";
import { buildEmbedGraph, buildLogitsGraph, type HeadTensor, headTensorNames } from "./head_graph.ts";
import { toFloat16 } from "./kv_block_graph.ts";
import { storedInMemory, toFloat32 } from "./safetensors.ts";
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

/** `data` stored as `dtype` (F32, F16, or BF16 rounded to nearest even), as a checkpoint holds it. */
function stored(shape: number[], data: Float32Array, dtype = "F32"): HeadTensor {
  if (dtype === "F32") return storedInMemory(shape, dtype, new Uint8Array(data.slice().buffer));
  if (dtype === "F16") return storedInMemory(shape, dtype, new Uint8Array(Float16Array.from(data).buffer));
  const u = new Uint32Array(data.slice().buffer), out = new Uint16Array(data.length);
  for (let i = 0; i < u.length; i++) out[i] = (u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16;
  return storedInMemory(shape, dtype, new Uint8Array(out.buffer));
}

Deno.test("buildEmbedGraph keeps a 16-bit table in float16 (when it fits); buildLogitsGraph int8 quantizes", () => {
  const cfg = parseModelConfig({ ...llama, tie_word_embeddings: true });
  const table = Float32Array.from({ length: 80 }, (_, i) => (i - 40) / 64);
  const heads = (dtype: string, data = table) =>
    new Map([
      ["embed", stored([10, 8], data, dtype)],
      ["norm_w", stored([8], new Float32Array(8).fill(1))],
      ["lm_head", stored([10, 8], data, dtype)],
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

Deno.test("head tables from a 16-bit file: converted by rows, the same as from the whole table in float32", () => {
  // more rows than one chunk of conversion and one tile of quantization, and a last partial one
  const V = 700, H = 24;
  const cfg = parseModelConfig({ ...llama, hidden_size: H, vocab_size: V, tie_word_embeddings: true });
  const w = Float32Array.from({ length: V * H }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 13)) / 7);
  for (const dtype of ["F16", "BF16"]) {
    const x = stored([V, H], w, dtype);
    const heads = new Map([["embed", x], ["norm_w", stored([H], new Float32Array(H).fill(1))], [
      "lm_head",
      x,
    ]]);
    const whole = toFloat32(dtype, x.bytes!);
    const embed = buildEmbedGraph(cfg, heads).matrices()[0];
    assert.deepEqual(
      new Uint16Array(embed.data.buffer, embed.data.byteOffset, V * H),
      toFloat16(whole),
      dtype,
    );
    const [q] = buildLogitsGraph(cfg, heads, "int8").matrices();
    const ref = quantizeInt8(whole, V, H);
    assert.deepEqual(new Int8Array(q.data.buffer, q.data.byteOffset, V * H), ref.q, `${dtype} int8 rows`);
    // the whole graph (scales included) is the one built from the table in float32
    const f32 = stored([V, H], whole);
    const asF32 = new Map([...heads, ["embed", f32], ["lm_head", f32]]);
    assert.deepEqual(
      buildLogitsGraph(cfg, heads, "int8").toBytes(),
      buildLogitsGraph(cfg, asF32, "int8").toBytes(),
    );
  }
});

Deno.test("head tensors: a dtype the head cannot convert is a typed error naming it", () => {
  const cfg = parseModelConfig({ ...llama, tie_word_embeddings: true });
  const bad = storedInMemory([10, 8], "I8", new Uint8Array(80));
  const heads = new Map([["embed", bad], ["norm_w", stored([8], new Float32Array(8).fill(1))], [
    "lm_head",
    bad,
  ]]);
  assert.throws(
    () => buildEmbedGraph(cfg, heads),
    (e: unknown) => e instanceof RuntimeError && e.code === "UNSUPPORTED_MODEL" && /I8/.test(e.message),
  );
});
