import assert from "node:assert/strict";
import { RuntimeError } from "../../errors.ts";
import { attr, DataType, OnnxGraph } from "../onnx_graph.ts";
import { OrtApi, pinLibrary, TensorType } from "./ort_api.ts";
import { resolveOrtLibrary } from "./ort_library_path.ts";

const isCode = (code: string, re?: RegExp) => (e: unknown) =>
  e instanceof RuntimeError && e.code === code && (!re || re.test(e.message));

/** y = x + 1 over [2, 3] float32. */
function addOne(): Uint8Array {
  const g = new OnnxGraph("add_one");
  g.input("x", DataType.FLOAT, [2, 3]);
  g.output("y", DataType.FLOAT, [2, 3]);
  g.node("Add", ["x", g.f32([1])], ["y"]);
  return g.toBytes();
}

Deno.test("OrtApi.load: a missing library is NATIVE_LOAD_FAILED naming the file", () => {
  assert.throws(
    () => OrtApi.load("/nonexistent/libonnxruntime.so.1"),
    isCode("NATIVE_LOAD_FAILED", /\/nonexistent\/libonnxruntime\.so\.1: the file does not exist/),
  );
});

Deno.test("OrtApi.load: a file that is no library for this platform is NATIVE_LOAD_FAILED", async () => {
  const path = await Deno.makeTempFile({ suffix: ".so" });
  try {
    await Deno.writeFile(path, new Uint8Array(4096).map((_, i) => (i * 31) & 255));
    assert.throws(() => OrtApi.load(path), (e: unknown) => {
      assert.ok(isCode("NATIVE_LOAD_FAILED")(e));
      const err = e as RuntimeError;
      assert.ok(err.message.includes(path), err.message);
      assert.equal(err.details.library, path);
      assert.match(err.hint, /plumise doctor/);
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
});

Deno.test({
  name: "OrtApi.load: a real library without onnxruntime's entry point is NATIVE_LOAD_FAILED",
  ignore: Deno.build.os !== "linux",
  fn() {
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    try {
      Deno.statSync(libc);
    } catch {
      libc = "/lib/aarch64-linux-gnu/libc.so.6";
    }
    assert.throws(() => OrtApi.load(libc), isCode("NATIVE_LOAD_FAILED", /OrtGetApiBase/));
  },
});

Deno.test("OrtApi: runs into caller-owned outputs in place and releases every object once", async () => {
  const api = OrtApi.load(await resolveOrtLibrary());
  assert.match(api.version, /^1\.\d+\.\d+/);
  const s = api.session(addOne(), "add-one", ["x"], ["y"], { intraOpThreads: 1 });
  const xs = new Float32Array([1, 2, 3, 4, 5, 6]);
  const out = new Float32Array(6);
  const x = api.tensor(xs, [2, 3], TensorType.FLOAT), y = api.tensor(out, [2, 3], TensorType.FLOAT);
  api.run(s, [x], [y]);
  assert.deepEqual([...out], [2, 3, 4, 5, 6, 7]); // written into our buffer, no copy back
  xs[0] = 10;
  api.run(s, [x], [y]);
  assert.equal(out[0], 11, "the input tensor reads our buffer, not a copy");
  // a view into a larger buffer: onnxruntime sees the view's own bytes
  const big = new Float32Array(12).fill(-1);
  const v = api.tensor(big.subarray(6), [2, 3], TensorType.FLOAT);
  api.run(s, [x], [v]);
  assert.deepEqual([...big], [-1, -1, -1, -1, -1, -1, 11, 3, 4, 5, 6, 7]);
  assert.deepEqual(api.live, { env: 1, options: 0, session: 1, value: 3, memory: 1 });
  for (const t of [x, y, v]) t.release();
  x.release(); // twice: nothing
  assert.throws(() => api.run(s, [x], [y]), isCode("ENGINE_FAILED", /used after release/));
  s.release();
  api.dispose();
  assert.deepEqual(api.live, { env: 0, options: 0, session: 0, value: 0, memory: 0 });
});

Deno.test("OrtApi: a refused graph and a failing run are ENGINE_FAILED with onnxruntime's message", async () => {
  const api = OrtApi.load(await resolveOrtLibrary());
  try {
    assert.throws(
      () => api.session(new Uint8Array([1, 2, 3, 4, 5]), "block 7", ["x"], ["y"], { intraOpThreads: 1 }),
      (e: unknown) => {
        assert.ok(isCode("ENGINE_FAILED", /onnxruntime refused the block 7 graph: /)(e), String(e));
        assert.equal((e as RuntimeError).details.ortCode, "ORT_INVALID_PROTOBUF");
        return true;
      },
    );
    // a graph onnxruntime refuses: an op it does not know, named in the message
    const g = new OnnxGraph("bad");
    g.input("x", DataType.FLOAT, [2]);
    g.output("y", DataType.FLOAT, [2]);
    g.node("NoSuchOp", ["x"], ["y"], { k: attr.i(1) });
    assert.throws(
      () => api.session(g.toBytes(), "bad", ["x"], ["y"], { intraOpThreads: 1 }),
      isCode("ENGINE_FAILED", /NoSuchOp/),
    );
    const s = api.session(addOne(), "add-one", ["x"], ["y"], { intraOpThreads: 1 });
    const x = api.tensor(new Float32Array(4), [4], TensorType.FLOAT);
    const y = api.tensor(new Float32Array(6), [2, 3], TensorType.FLOAT);
    assert.throws(() => api.run(s, [x], [y]), isCode("ENGINE_FAILED", /the add-one graph failed: .*x/));
    // still usable after the failure
    const x2 = api.tensor(new Float32Array(6), [2, 3], TensorType.FLOAT);
    api.run(s, [x2], [y]);
    assert.equal((y.data as Float32Array)[5], 1);
    for (const t of [x, y, x2, s]) t.release();
    assert.throws(
      () => api.tensor(new Float32Array(5), [2, 3], TensorType.FLOAT),
      isCode("ENGINE_FAILED", /shape \[2,3\] over 5 values/),
    );
  } finally {
    api.dispose();
  }
  assert.equal(api.live.session + api.live.value + api.live.options, 0);
});

Deno.test("pinLibrary keeps the library loaded for good (a Worker's end must not unload onnxruntime)", async () => {
  const path = await resolveOrtLibrary();
  assert.equal(
    pinLibrary(path),
    Deno.build.os === "linux" || Deno.build.os === "darwin" || Deno.build.os === "windows",
  );
  assert.equal(pinLibrary("/nonexistent/lib.so"), false);
});
