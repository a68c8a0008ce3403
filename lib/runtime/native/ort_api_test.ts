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
  assert.deepEqual(api.live, { env: 1, options: 0, session: 1, value: 3, memory: 1, container: 0 });
  for (const t of [x, y, v]) t.release();
  x.release(); // twice: nothing
  assert.throws(() => api.run(s, [x], [y]), isCode("ENGINE_FAILED", /used after release/));
  s.release();
  api.dispose();
  assert.deepEqual(api.live, { env: 0, options: 0, session: 0, value: 0, memory: 0, container: 0 });
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

Deno.test("OrtApi: a shared initializer is the caller's memory; a packed-weights container serves two sessions", async () => {
  const api = OrtApi.load(await resolveOrtLibrary());
  const graph = (op: "Add" | "MatMul") => {
    const g = new OnnxGraph(op);
    g.input("x", DataType.FLOAT, [1, 2]);
    g.output("y", DataType.FLOAT, [1, 2]);
    const w = op === "Add"
      ? g.initializer("w", new Float32Array(2), [1, 2])
      : g.initializer("w", new Float32Array(4), [2, 2]);
    g.node(op, ["x", w], ["y"]);
    return g.toBytes();
  };
  const container = api.prepackedContainer();
  const wAdd = Float32Array.from([10, 20]), wMat = Float32Array.from([1, 2, 3, 4]);
  const add = api.tensor(wAdd, [1, 2], TensorType.FLOAT), mat = api.tensor(wMat, [2, 2], TensorType.FLOAT);
  const share = (value: typeof add) => ({ container, initializers: [{ name: "w_0", value }] });
  const sAdd = api.session(graph("Add"), "add", ["x"], ["y"], { intraOpThreads: 1, shared: share(add) });
  const s1 = api.session(graph("MatMul"), "matmul 1", ["x"], ["y"], {
    intraOpThreads: 1,
    shared: share(mat),
  });
  const s2 = api.session(graph("MatMul"), "matmul 2", ["x"], ["y"], {
    intraOpThreads: 1,
    shared: share(mat),
  });
  const x = api.tensor(Float32Array.from([1, 1]), [1, 2], TensorType.FLOAT);
  const y = api.tensor(new Float32Array(2), [1, 2], TensorType.FLOAT);
  try {
    assert.equal(api.live.container, 1);
    api.run(sAdd, [x], [y]);
    assert.deepEqual([...y.data], [11, 21], "the shared values replace the graph's zeros");
    wAdd[0] = 100;
    api.run(sAdd, [x], [y]);
    assert.equal(y.data[0], 101, "the session reads the caller's array, not a copy");
    for (const s of [s1, s2]) {
      api.run(s, [x], [y]);
      assert.deepEqual([...y.data], [4, 6]);
    }
  } finally {
    for (const h of [x, y, sAdd, s1, s2, add, mat]) h.release();
    container.release(); // after the sessions that point into it
    api.dispose();
  }
  assert.deepEqual(api.live, { env: 0, options: 0, session: 0, value: 0, memory: 0, container: 0 });
});
