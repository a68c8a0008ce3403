import assert from "node:assert/strict";
import { clientHeadBytes, fileBytesPerWeight } from "./client_head_bytes.ts";

Deno.test("clientHeadBytes: the table in the file's width plus the LM head twice in the served format", () => {
  // Qwen3-32B: 151 936 × 5 120, bfloat16 files
  const qwen = { vocabSize: 151_936, hiddenSize: 5_120, fileBytesPerWeight: 2 };
  assert.equal(clientHeadBytes(qwen, "int8"), 151_936 * 5_120 * 4);
  assert.equal(clientHeadBytes(qwen, "fp32"), 151_936 * 5_120 * 10);
  // a float32 checkpoint keeps a float32 table
  assert.equal(clientHeadBytes({ ...qwen, fileBytesPerWeight: 4 }, "int8"), 151_936 * 5_120 * 6);
});

Deno.test("fileBytesPerWeight: float32 files are 4 bytes a weight, 16-bit and unstated ones 2", () => {
  assert.equal(fileBytesPerWeight({ torch_dtype: "float32" }), 4);
  assert.equal(fileBytesPerWeight({ dtype: "float32" }), 4);
  assert.equal(fileBytesPerWeight({ torch_dtype: "bfloat16" }), 2);
  assert.equal(fileBytesPerWeight({ torch_dtype: "float16" }), 2);
  assert.equal(fileBytesPerWeight({}), 2);
});
