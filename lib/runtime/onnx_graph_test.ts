import assert from "node:assert/strict";
import { OrtApi, TensorType } from "./native/ort_api.ts";
import { resolveOrtLibrary } from "./native/ort_library_path.ts";
import { attr, DataType, OnnxGraph } from "./onnx_graph.ts";

/** Runs `model` on one float input into one float output of `outShape` through the C API binding. */
async function runOnce(
  model: Uint8Array,
  x: Float32Array,
  xShape: number[],
  outShape: number[],
  externalData?: { path: string; data: Uint8Array }[],
): Promise<Float32Array> {
  const api = OrtApi.load(await resolveOrtLibrary());
  const s = api.session(model, "test", ["x"], ["y"], { intraOpThreads: 1, externalData });
  const y = new Float32Array(outShape.reduce((a, b) => a * b, 1));
  const xt = api.tensor(x, xShape, TensorType.FLOAT), yt = api.tensor(y, outShape, TensorType.FLOAT);
  try {
    api.run(s, [xt], [yt]);
    return y;
  } finally {
    for (const h of [xt, yt, s]) h.release();
    api.dispose();
  }
}

Deno.test("OnnxGraph: onnxruntime loads the encoded model and computes it (negative int attrs, int64 consts)", async () => {
  const g = new OnnxGraph("t");
  g.input("x", DataType.FLOAT, ["B", 3]);
  g.output("y", DataType.FLOAT, ["B", 3]);
  const w = g.initializer("w", Float32Array.from([1, 2, 3]), [3]);
  const added = g.op("Add", ["x", w]);
  const soft = g.op("Softmax", [added], { axis: attr.i(-1) });
  const r = g.op("Reshape", [soft, g.i64([-1, 3])]);
  g.node("Mul", [r, g.f32([2])], ["y"]);
  const bytes = g.toBytes();
  assert.deepEqual(bytes, g.toBytes(), "encoding is deterministic");
  const y = await runOnce(bytes, Float32Array.from([0, 0, 0, 1, 1, 1]), [2, 3], [2, 3]);
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const z = e[0] + e[1] + e[2];
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(y[i] - 2 * e[i % 3] / z) < 1e-6);
});

Deno.test("OnnxGraph: a malformed graph is refused by onnxruntime, and initializer sizes are checked", async () => {
  const g = new OnnxGraph("bad");
  g.input("x", DataType.FLOAT, [2]);
  g.output("y", DataType.FLOAT, [2]);
  g.node("NoSuchOp", ["x"], ["y"]);
  await assert.rejects(runOnce(g.toBytes(), new Float32Array(2), [2], [2]), /NoSuchOp/);
  assert.throws(() => g.initializer("w", new Float32Array(3), [2, 2]), /3 values for dims \[2,2\]/);
});

Deno.test("OnnxGraph: weights as in-memory external data load and compute the same", async () => {
  const g = new OnnxGraph("ext");
  g.input("x", DataType.FLOAT, [1, 4]);
  g.output("y", DataType.FLOAT, [1, 2]);
  g.node("MatMul", ["x", g.initializer("w", Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [4, 2])], ["y"]);
  const enc = g.encode({ externalAbove: 16 });
  assert.equal(enc.externalData.length, 1);
  assert.equal(enc.externalData[0].data.byteLength, 32);
  const y = await runOnce(enc.model, Float32Array.from([1, 1, 1, 1]), [1, 4], [1, 2], enc.externalData);
  assert.deepEqual(Array.from(y), [16, 20]);
});

Deno.test("OnnxGraph.embed: two graphs joined into one compute what they compute in turn; matrices() lists rank-2 weights", async () => {
  const first = new OnnxGraph("first"), second = new OnnxGraph("second");
  first.input("x", DataType.FLOAT, [1, 2]);
  first.output("mid", DataType.FLOAT, [1, 2]);
  const w = Float32Array.from([1, 2, 3, 4]);
  first.node("MatMul", ["x", first.initializer("w", w, [2, 2])], ["mid"]);
  second.input("mid", DataType.FLOAT, [1, 2]);
  second.output("y", DataType.FLOAT, [1, 2]);
  // the same fresh names in both graphs ("w_0"): the prefixes keep them apart
  second.node("Add", ["mid", second.initializer("w", Float32Array.from([10, 20]), [2])], ["y"]);
  assert.deepEqual(first.matrices().map((m) => [m.name, m.dims]), [["w_0", [2, 2]]]);
  assert.equal(first.matrices()[0].data, w, "the data is the graph's own array, not a copy");
  assert.deepEqual(second.matrices(), []);
  const joined = new OnnxGraph("joined");
  joined.input("x", DataType.FLOAT, [1, 2]);
  joined.output("y", DataType.FLOAT, [1, 2]);
  const keep = (prefix: string) => (n: string) => ["x", "mid", "y"].includes(n) ? n : prefix + n;
  joined.embed(first, keep("a/"));
  joined.embed(second, keep("b/"));
  assert.deepEqual(joined.matrices().map((m) => m.name), ["a/w_0"]);
  const y = await runOnce(joined.toBytes(), Float32Array.from([1, 1]), [1, 2], [1, 2]);
  assert.deepEqual(Array.from(y), [1 + 3 + 10, 2 + 4 + 20]);
});
