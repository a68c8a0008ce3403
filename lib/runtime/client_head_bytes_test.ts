import assert from "node:assert/strict";
import { clientHeadBytes, clientHeadLoadBytes, fileBytesPerWeight } from "./client_head_bytes.ts";

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

Deno.test("clientHeadLoadBytes: what is held, plus onnxruntime's transient copy of both tables", () => {
  // the probe of docs/benchmarks.md ("The client head"): an untied BF16 head, its peak RSS per format,
  // the process's own share of it, and how far under the peak the estimate may stay
  const probe = { vocabSize: 151_936, hiddenSize: 1_024, fileBytesPerWeight: 2 };
  const peakMiB = { int8: 1_300, fp32: 2_480 }, processMiB = 85, slack = 0.15;
  assert.equal(clientHeadLoadBytes(probe, "int8"), 151_936 * 1_024 * 7);
  assert.equal(clientHeadLoadBytes(probe, "fp32"), 151_936 * 1_024 * 16);
  for (const weights of ["int8", "fp32"] as const) {
    const estimate = clientHeadLoadBytes(probe, weights) / 2 ** 20 + processMiB;
    assert.ok(
      estimate <= peakMiB[weights] && estimate >= (1 - slack) * peakMiB[weights],
      `${weights}: ${estimate}`,
    );
  }
});
