import assert from "node:assert/strict";
import { RuntimeError } from "../lib/errors.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import { OnnxBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { makeBloomCheckpoint, makeLlamaCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { memoryLogger } from "../lib/util/logger.ts";

const code = (c: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof RuntimeError, `expected RuntimeError, got ${e}`);
  assert.equal(e.code, c, e.message);
  if (re) assert.match(e.message, re);
  assert.ok(e.hint.length > 0, "every error has a hint");
  return true;
};

Deno.test("runtime bad input: typed errors with the value and a hint; the Worker keeps serving", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 3, shards: 1 });
  const rt = new OnnxBlockRuntime({
    model: ck.dir,
    start: 1,
    end: 3,
    weights: "fp32",
    cacheTokens: 200,
    maxLength: 32,
  });
  await assert.rejects(rt.openSession({ start: 1, end: 3, maxLength: 4, batch: 1 }), code("NOT_RUNNING"));
  await rt.start();
  try {
    const info = rt.info();
    assert.deepEqual(
      {
        modelType: info.modelType,
        hiddenSize: info.hiddenSize,
        numBlocks: info.numBlocks,
        start: info.start,
        end: info.end,
        weights: info.weights,
      },
      { modelType: "bloom", hiddenSize: 48, numBlocks: 3, start: 1, end: 3, weights: "fp32" },
    );
    const H = info.hiddenSize;
    await assert.rejects(
      rt.openSession({ start: 0, end: 2, maxLength: 4, batch: 1 }),
      code("BAD_SPAN", /\[0, 2\)/),
    );
    await assert.rejects(
      rt.openSession({ start: 1, end: 3, maxLength: 33, batch: 1 }),
      code("TOO_LONG", /33/),
    );
    await assert.rejects(
      rt.openSession({ start: 1, end: 3, maxLength: 4, batch: 0 }),
      code("BAD_INPUT", /batch/),
    );
    const s = await rt.openSession({ start: 1, end: 3, maxLength: 32, batch: 2 }); // 128 of 200
    assert.equal(rt.info().cacheTokensLeft, 72);
    await assert.rejects(
      rt.openSession({ start: 1, end: 3, maxLength: 32, batch: 2 }),
      code("CACHE_FULL", /128 cache tokens.*72/),
    );
    await assert.rejects(s.step(fakeHidden(2, 3, H + 2)), code("BAD_INPUT", /hidden size 50.*48/));
    await assert.rejects(s.step(fakeHidden(1, 3, H)), code("BAD_INPUT", /batch 1/));
    const nan = fakeHidden(2, 3, H);
    nan.data[7] = NaN;
    await assert.rejects(s.step(nan), code("BAD_INPUT", /NaN/));
    await assert.rejects(s.step(fakeHidden(2, 33, H)), code("TOO_LONG", /maxLength 32/));
    await assert.rejects(
      s.step(fakeHidden(2, 1, H), { startFromPosition: 2 }),
      code("BAD_INPUT", /startFromPosition 2/),
    );
    await assert.rejects(s.step(fakeHidden(2, 1, H), { hypoIds: [0, 2] }), code("BAD_INPUT", /hypoIds/));
    await assert.rejects(rt.forward(1, 3, fakeHidden(1, 40, H)), code("TOO_LONG", /40/));
    // An error raised inside the Worker crosses the thread with its code.
    await assert.rejects(
      rt.worker().call("step", {
        id: "no-such-session",
        hidden: { data: new Float32Array(H), shape: [1, 1, H] },
      }),
      code("UNKNOWN_SESSION", /no-such-session/),
    );
    // Still serving after all of that.
    const ok = await s.step(fakeHidden(2, 3, H));
    assert.deepEqual(ok.shape, [2, 3, H]);
    assert.equal(s.position, 3);
    assert.ok(ok.data.every(Number.isFinite));
    await s.close();
    await s.close();
    assert.equal(rt.info().cacheTokensLeft, 200);
    await assert.rejects(s.step(fakeHidden(2, 1, H)), code("UNKNOWN_SESSION"));
    assert.equal(rt.getSession(s.id), undefined);
  } finally {
    await rt.stop();
    await rt.stop();
  }
  await assert.rejects(rt.forward(1, 2, fakeHidden(1, 1, 48)), code("NOT_RUNNING"));
});

Deno.test("runtime queue: an inference step is served before queued forward requests", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 2, shards: 1 });
  const rt = new OnnxBlockRuntime({
    model: ck.dir,
    start: 0,
    end: 2,
    weights: "fp32",
    cacheTokens: 1000,
    maxLength: 512,
  });
  await rt.start();
  try {
    const H = rt.info().hiddenSize;
    const s = await rt.openSession({ start: 0, end: 2, maxLength: 8, batch: 1 });
    const order: string[] = [];
    // Eight long forwards queue up behind the first; the step posted after them must overtake the
    // queue (FIFO would serve it last). Wide margins: under CI load the main thread may be
    // descheduled between posting the forwards and the step while the Worker works through a few.
    const forwards = [0, 1, 2, 3, 4, 5, 6, 7].map((k) =>
      rt.forward(0, 2, fakeHidden(1, 512, H, k)).then(() => order.push(`forward${k}`))
    );
    const step = s.step(fakeHidden(1, 1, H)).then(() => order.push("step"));
    await Promise.all([...forwards, step]);
    assert.ok(order.indexOf("step") < order.indexOf("forward5"), `order: ${order.join(", ")}`);
  } finally {
    await rt.stop();
  }
});

Deno.test("runtime config refusals: unsupported model type and rope scaling are clear errors", async () => {
  const ck = await makeLlamaCheckpoint({
    numLayers: 1,
    shards: 1,
    ropeScaling: { rope_type: "yarn", factor: 4 },
  });
  await assert.rejects(
    new OnnxBlockRuntime({ model: ck.dir, start: 0, end: 1, weights: "fp32" }).start(),
    code("UNSUPPORTED_MODEL", /rope_scaling.rope_type = "yarn"/),
  );
  const cfg = JSON.parse(await Deno.readTextFile(`${ck.dir}/config.json`));
  cfg.model_type = "gpt_neox";
  await Deno.writeTextFile(`${ck.dir}/config.json`, JSON.stringify(cfg));
  await assert.rejects(
    new OnnxBlockRuntime({ model: ck.dir, start: 0, end: 1, weights: "fp32" }).start(),
    code("UNSUPPORTED_MODEL", /model_type = "gpt_neox"/),
  );
});

Deno.test("runtime abort: an aborted step that still ran in the Worker does not leak into the session's past", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  const rt = new OnnxBlockRuntime({
    model: ck.dir,
    start: 0,
    end: 2,
    weights: "fp32",
    cacheTokens: 1000,
    maxLength: 2048,
  });
  await rt.start();
  try {
    const H = rt.info().hiddenSize;
    const x = fakeHidden(1, 6, H, 4);
    const full = await rt.forward(0, 2, x);
    const s = await rt.openSession({ start: 0, end: 2, maxLength: 16, batch: 1 });
    await s.step({ data: x.data.slice(0, 5 * H), shape: [1, 5, H] });
    // Keep the Worker busy with a long forward so the step is already posted (and will still
    // run) when the caller gives up on it.
    const busy = rt.forward(0, 2, fakeHidden(1, 2048, H, 5));
    const ctl = new AbortController();
    const aborted = s.step(fakeHidden(1, 3, H, 99), { signal: ctl.signal });
    await new Promise((r) => setTimeout(r, 0));
    ctl.abort(new Error("client went away"));
    await assert.rejects(aborted, /client went away/);
    await busy;
    assert.equal(s.position, 5);
    const last = await s.step({ data: x.data.slice(5 * H), shape: [1, 1, H] });
    let d = 0;
    for (let i = 0; i < H; i++) d = Math.max(d, Math.abs(last.data[i] - full.data[5 * H + i]));
    assert.ok(d <= 1e-5, `diff ${d}`);
  } finally {
    await rt.stop();
  }
});

Deno.test("runtime stop: a clean stop (also after a failed start) logs no error; calls after it are NOT_RUNNING", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2 });
  try {
    const { logger, records } = memoryLogger();
    const rt = new OnnxBlockRuntime({ model: ck.dir, start: 0, end: 2, weights: "fp32", threads: 1, logger });
    await rt.start();
    await rt.stop();
    // a start refused inside the Worker, then the stop that cleans it up
    const bad = new OnnxBlockRuntime({
      model: ck.dir,
      start: 0,
      end: 2,
      weights: "fp32",
      threads: 2,
      pinning: [0, 4095],
      logger,
    });
    await assert.rejects(bad.start(), (e) => e instanceof RuntimeError && e.code === "BAD_PINNING");
    await bad.stop();
    assert.deepEqual(records.filter((r) => r.level === "error"), []);
    await assert.rejects(
      rt.openSession({ start: 0, end: 2, maxLength: 4, batch: 1 }),
      (e) => e instanceof RuntimeError && e.code === "NOT_RUNNING",
    );
  } finally {
    await Deno.remove(ck.dir, { recursive: true });
  }
});

Deno.test("runtime: an onnxruntime library that does not load is NATIVE_LOAD_FAILED naming the file; start can be retried", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  const junk = await Deno.makeTempFile({ suffix: ".so.1" });
  await Deno.writeTextFile(junk, "not a shared library");
  const { logger } = memoryLogger();
  try {
    for (const ortLibrary of ["/nonexistent/dir/libonnxruntime.so.1", junk]) {
      const rt = new OnnxBlockRuntime({
        model: ck.dir,
        start: 0,
        end: 2,
        weights: "fp32",
        ortLibrary,
        logger,
      });
      await assert.rejects(rt.start(), (e: unknown) => {
        code("NATIVE_LOAD_FAILED")(e);
        assert.ok((e as RuntimeError).message.includes(ortLibrary), (e as RuntimeError).message);
        return true;
      });
      await assert.rejects(rt.openSession({ start: 0, end: 2, maxLength: 4, batch: 1 }), code("NOT_RUNNING"));
      await rt.stop();
    }
    // the same process still loads the real library afterwards
    const ok = new OnnxBlockRuntime({ model: ck.dir, start: 0, end: 2, weights: "fp32", maxLength: 8 });
    await ok.start();
    const s = await ok.openSession({ start: 0, end: 2, maxLength: 8, batch: 1 });
    const y = await s.step(fakeHidden(1, 2, ok.info().hiddenSize, 1));
    assert.equal(y.data.length, 2 * ok.info().hiddenSize);
    await ok.stop();
  } finally {
    await Deno.remove(junk);
  }
});

Deno.test("runtime: a checkpoint the engine cannot build is BAD_CHECKPOINT naming the tensor; nothing is left loaded", async () => {
  const ck = await makeLlamaCheckpoint({ numLayers: 2, shards: 1 });
  const cfg = JSON.parse(await Deno.readTextFile(`${ck.dir}/config.json`));
  await Deno.writeTextFile(
    `${ck.dir}/config.json`,
    JSON.stringify({ ...cfg, intermediate_size: (cfg.intermediate_size as number) + 8 }),
  );
  const rt = new OnnxBlockRuntime({ model: ck.dir, start: 0, end: 2, weights: "int8" });
  await assert.rejects(rt.start(), code("BAD_CHECKPOINT", /block tensor mlp\.gate_proj\.weight has shape/));
  await assert.rejects(rt.openSession({ start: 0, end: 2, maxLength: 4, batch: 1 }), code("NOT_RUNNING"));
  await rt.stop();
  await Deno.writeTextFile(`${ck.dir}/config.json`, JSON.stringify(cfg));
  await rt.start(); // the same runtime starts once the checkpoint is right
  assert.equal(rt.info().openSessions, 0);
  await rt.stop();
});
