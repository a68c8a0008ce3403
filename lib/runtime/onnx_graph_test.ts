import assert from "node:assert/strict";
import * as ort from "onnxruntime-node";
import { attr, DataType, OnnxGraph } from "./onnx_graph.ts";

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
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ x: new ort.Tensor("float32", Float32Array.from([0, 0, 0, 1, 1, 1]), [2, 3]) });
  const y = out.y.data as Float32Array;
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const z = e[0] + e[1] + e[2];
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(y[i] - 2 * e[i % 3] / z) < 1e-6);
  await s.release();
});

Deno.test("OnnxGraph: a malformed graph is refused by onnxruntime, and initializer sizes are checked", async () => {
  const g = new OnnxGraph("bad");
  g.input("x", DataType.FLOAT, [2]);
  g.output("y", DataType.FLOAT, [2]);
  g.node("NoSuchOp", ["x"], ["y"]);
  await assert.rejects(ort.InferenceSession.create(g.toBytes()));
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
  const s = await ort.InferenceSession.create(enc.model, { externalData: enc.externalData });
  const out = await s.run({ x: new ort.Tensor("float32", Float32Array.from([1, 1, 1, 1]), [1, 4]) });
  assert.deepEqual(Array.from(out.y.data as Float32Array), [16, 20]);
  await s.release();
});
