import assert from "node:assert/strict";
import { RuntimeError, UnavailableError } from "../lib/errors.ts";
import { memoryLogger } from "../lib/util/logger.ts";
import { createBlockRuntime, createClientHead, loadTokenizer, OnnxClientHead } from "../lib/runtime/mod.ts";
import {
  type Checkpoint,
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
  makeQwen3Checkpoint,
} from "./helpers/checkpoint_fixture.ts";
import { maxAbsDiff, referenceEmbed, referenceLogits, referenceSpan } from "./helpers/runtime_reference.ts";

const cases: Array<[string, () => Promise<Checkpoint>]> = [
  ["bloom", () => makeBloomCheckpoint({ numLayers: 2, transformerPrefix: true })],
  ["llama (untied)", () => makeLlamaCheckpoint({ numLayers: 2 })],
  [
    "llama (attention_bias, linear rope, no GQA)",
    () =>
      makeLlamaCheckpoint({
        numLayers: 2,
        attentionBias: true,
        numKvHeads: 4,
        ropeScaling: { rope_type: "linear", factor: 2 },
      }),
  ],
  [
    "llama (tied, qwen2 biases)",
    () =>
      makeLlamaCheckpoint({ numLayers: 2, tieWordEmbeddings: true, modelType: "qwen2", ropeScaling: null }),
  ],
  [
    "qwen3 (untied, 3 shards, head_dim ≠ hidden/heads)",
    () => makeQwen3Checkpoint({ numLayers: 2, shards: 3 }),
  ],
  [
    "qwen3 (tied, one file, no GQA)",
    () => makeQwen3Checkpoint({ numLayers: 2, shards: 1, tieWordEmbeddings: true, numKvHeads: 4 }),
  ],
];

for (const [name, make] of cases) {
  Deno.test(`client head + tokenizer + blocks (${name}) match the float64 reference end to end`, async () => {
    const ck = await make();
    const tok = await loadTokenizer({ model: ck.dir });
    const ids = tok.encode("hello the world is and testing");
    assert.equal(tok.decode(ids), "hello the world is and testing");
    const head = createClientHead({ model: ck.dir });
    await head.start();
    const L = (ck.config.n_layer ?? ck.config.num_hidden_layers) as number;
    const rt = createBlockRuntime({ model: ck.dir, start: 0, end: L, weights: "fp32", cacheTokens: 10_000 });
    await rt.start();
    try {
      const H = head.info.hiddenSize;
      assert.equal(head.info.vocabSize, ck.config.vocab_size);
      // the longest session the servers take: the model's positions (Qwen3's 40960, the Llama
      // fixtures' 4096), at most the engine's 8192; BLOOM has no position limit
      const positions = ck.config.max_position_embeddings as number | undefined;
      assert.equal(head.info.maxLength, Math.min(positions ?? 8192, 8192));
      assert.ok(tok.vocabSize <= head.info.vocabSize);
      const x = await head.embed({ data: Int32Array.from(ids), shape: [1, ids.length] });
      const refX = referenceEmbed(ck, [ids]);
      assert.ok(maxAbsDiff(x.data, refX.flat(2)) <= 1e-5, "embeddings");
      const y = await rt.forward(0, L, x);
      const refY = referenceSpan(ck, 0, L, refX);
      assert.ok(maxAbsDiff(y.data, refY.flat(2)) <= 1e-4, "blocks");
      const last = y.data.slice((ids.length - 1) * H, ids.length * H);
      const logits = await head.logits({ data: last, shape: [1, H] });
      const refL = referenceLogits(ck, [refY[0][ids.length - 1]]);
      assert.deepEqual(logits.shape, [1, head.info.vocabSize]);
      const d = maxAbsDiff(logits.data, refL[0]);
      assert.ok(d <= 1e-4, `logits diff ${d}`);
      await assert.rejects(
        head.embed({ data: Int32Array.from([1, head.info.vocabSize]), shape: [1, 2] }),
        (e: unknown) =>
          e instanceof RuntimeError && e.code === "BAD_INPUT" &&
          e.message.includes(String(head.info.vocabSize)),
      );
      await assert.rejects(
        head.logits({ data: new Float32Array(H + 1), shape: [1, H + 1] }),
        (e: unknown) => e instanceof RuntimeError && e.code === "BAD_INPUT",
      );
    } finally {
      await rt.stop();
      await head.stop();
    }
  });
}

Deno.test("tokenizer: special tokens, EOS set and chat template from the checkpoint files", async () => {
  const llama = await loadTokenizer({ model: (await makeLlamaCheckpoint({ numLayers: 1 })).dir });
  assert.equal(llama.bos?.text, "<|begin_of_text|>");
  assert.deepEqual(llama.eos.map((t) => t.text).sort(), ["<|end_of_text|>", "<|eot_id|>"]);
  assert.match(llama.chatTemplate ?? "", /start_header_id/);
  const ids = llama.encode("the world");
  assert.equal(ids[0], llama.bos!.id);
  assert.deepEqual(llama.encode("the world", { addSpecialTokens: false }), ids.slice(1));
  assert.equal(llama.decode(ids, { skipSpecialTokens: false }), "<|begin_of_text|>the world");
  const bloom = await loadTokenizer({ model: (await makeBloomCheckpoint({ numLayers: 1 })).dir });
  assert.equal(bloom.bos?.text, "<s>");
  assert.deepEqual(bloom.eos.map((t) => t.id), [2]);
  assert.equal(bloom.pad?.id, 3);
  assert.equal(bloom.chatTemplate, undefined);
});

Deno.test("tokenizer: Qwen3's tokenizer.json (no BOS, ChatML specials, <think> not special) and template", async () => {
  const ck = await makeQwen3Checkpoint({ numLayers: 1, shards: 1 });
  const tok = await loadTokenizer({ model: ck.dir });
  assert.equal(tok.bos, undefined, "bos_token: null means no BOS, whatever generation_config.json says");
  assert.deepEqual(tok.eos.map((t) => t.text), ["<|im_end|>", "<|endoftext|>"]);
  assert.equal(tok.pad?.text, "<|endoftext|>");
  assert.match(tok.chatTemplate ?? "", /enable_thinking is defined and enable_thinking is false/);
  const text = "<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
  const ids = tok.encode(text);
  const id = (t: string) => tok.encode(t, { addSpecialTokens: false });
  assert.deepEqual(id("<|im_start|>"), [ids[0]], "a special token is one id, and nothing is prepended");
  assert.equal(ids.filter((i) => i === id("<|im_end|>")[0]).length, 1);
  assert.equal(ids.filter((i) => i === id("<think>")[0]).length, 1);
  assert.equal(tok.decode(ids, { skipSpecialTokens: false }), text);
  // ChatML markers are special (skipped); the thinking block is not (the model's text keeps it)
  assert.equal(tok.decode(ids), "user\nhello world\nassistant\n<think>\n\n</think>\n\n");
  assert.ok(tok.vocabSize <= (ck.config.vocab_size as number));
});

Deno.test("importing lib/runtime/mod.ts does not load onnxruntime (no --allow-ffi needed)", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/probe.ts`;
  await Deno.writeTextFile(
    file,
    `import * as m from "${
      new URL("../lib/runtime/mod.ts", import.meta.url).href
    }";\nconsole.log(typeof m.createBlockRuntime);\n`,
  );
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-env",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      file,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "function", new TextDecoder().decode(out.stderr));
  assert.equal(out.code, 0);
});

Deno.test("client head: logits requests queued together run as one pass and each gets its own rows", async () => {
  const ck = await makeQwen3Checkpoint({ numLayers: 1, shards: 1 });
  const head = createClientHead({ model: ck.dir });
  await head.start();
  try {
    const H = head.info.hiddenSize, V = head.info.vocabSize;
    const rows = (b: number, seed: number) => ({
      data: Float32Array.from({ length: b * H }, (_, i) => Math.sin(i * 0.31 + seed)),
      shape: [b, H] as [number, number],
    });
    const inputs = [rows(1, 1), rows(2, 2), rows(1, 3), rows(3, 4)];
    const alone: { data: Float32Array }[] = [];
    for (const x of inputs) alone.push(await head.logits(x));
    // sent at once: the Worker is busy with the first while the others queue, and takes them together
    const together = await Promise.all(inputs.map((x) => head.logits(x)));
    together.forEach((r, i) => {
      assert.deepEqual(r.shape, [inputs[i].shape[0], V]);
      assert.ok(maxAbsDiff(r.data, alone[i].data) <= 1e-5, `request ${i}`);
    });
    // a request refused on the main thread fails alone; the others in flight still answer
    const mixed = await Promise.allSettled([
      head.logits(inputs[0]),
      head.logits({ data: new Float32Array(H + 1), shape: [1, H + 1] }),
      head.logits(inputs[1]),
    ]);
    assert.deepEqual(mixed.map((m) => m.status), ["fulfilled", "rejected", "fulfilled"]);
  } finally {
    await head.stop();
  }
});

for (const [name, make] of [cases[0], cases[4]]) {
  Deno.test(`client head with an int8 LM head (${name}): logits within int8 rounding, same argmax`, async () => {
    const ck = await make();
    const fp32 = createClientHead({ model: ck.dir });
    const int8 = createClientHead({ model: ck.dir, weights: "int8" });
    await fp32.start();
    await int8.start();
    try {
      const H = fp32.info.hiddenSize, V = fp32.info.vocabSize;
      const ids = Int32Array.from([5, 17, 40, 33]);
      const x8 = await int8.embed({ data: ids, shape: [1, 4] });
      assert.deepEqual(
        x8.data,
        (await fp32.embed({ data: ids, shape: [1, 4] })).data,
        "embeddings stay fp32",
      );
      let agree = 0;
      for (let k = 0; k < 8; k++) {
        const last = Float32Array.from({ length: H }, (_, i) => Math.sin(i * 0.7 + k) * (1 + k / 4));
        const a = (await fp32.logits({ data: last, shape: [1, H] })).data;
        const b = (await int8.logits({ data: last, shape: [1, H] })).data;
        assert.equal(b.length, V);
        let lo = Infinity, hi = -Infinity, ia = 0, ib = 0;
        for (let i = 0; i < V; i++) {
          lo = Math.min(lo, a[i]);
          hi = Math.max(hi, a[i]);
          if (a[i] > a[ia]) ia = i;
          if (b[i] > b[ib]) ib = i;
        }
        const d = maxAbsDiff(a, b);
        assert.ok(d > 0, "the int8 head is really quantized");
        assert.ok(d <= 0.02 * (hi - lo), `int8 logits off by ${d} of a ${hi - lo} range`);
        if (ia === ib) agree++;
      }
      assert.ok(agree >= 7, `argmax agreed on ${agree} of 8`);
    } finally {
      await int8.stop();
      await fp32.stop();
    }
  });
}

Deno.test("client head: single tokens' embeddings come from a bounded cache, equal to the Worker's", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 1 });
  const H = ck.config.hidden_size as number;
  const head = new OnnxClientHead({ model: ck.dir, embedCacheBytes: 2 * 4 * H }); // two rows
  const none = new OnnxClientHead({ model: ck.dir, embedCacheBytes: 0 });
  await head.start();
  await none.start();
  try {
    const batch = await head.embed({ data: Int32Array.of(5, 9, 11), shape: [1, 3] });
    assert.equal(head.cachedRows, 0, "a prompt goes to the Worker and is not kept");
    const row = (i: number) => batch.data.slice(i * H, (i + 1) * H);
    const one = async (id: number) => (await head.embed({ data: Int32Array.of(id), shape: [1, 1] })).data;
    assert.deepEqual(await one(5), row(0));
    const cached = await one(5);
    assert.deepEqual(cached, row(0), "from the cache");
    cached.fill(0); // a caller's copy: the cache is not touched
    assert.deepEqual(await one(5), row(0));
    await one(9);
    await one(5); // 5 most recent, 9 next
    await one(11); // evicts 9
    assert.equal(head.cachedRows, 2);
    assert.deepEqual(await one(9), row(1));
    assert.deepEqual(await one(11), row(2));
    await none.embed({ data: Int32Array.of(5), shape: [1, 1] });
    assert.equal(none.cachedRows, 0);
    await assert.rejects(
      head.embed({ data: Int32Array.of(head.info.vocabSize), shape: [1, 1] }),
      (e: unknown) => e instanceof RuntimeError && e.code === "BAD_INPUT",
    );
  } finally {
    await none.stop();
    await head.stop();
  }
  assert.equal(head.cachedRows, 0, "stop drops the cache");
});

Deno.test("client head: refused before loading when the machine lacks the memory it needs, loads once it has it", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 1 });
  const V = ck.config.vocab_size as number, H = ck.config.hidden_size as number;
  // the fixture's files are float16: the table in float16, the int8 LM head twice, and while loading
  // onnxruntime's copy of both
  const need = V * H * (2 + 2) + V * H * (2 + 1);
  let available = need - 1;
  const { logger, records } = memoryLogger();
  const head = new OnnxClientHead({
    model: ck.dir,
    weights: "int8",
    availableMemoryBytes: () => available,
    logger,
  });
  try {
    await assert.rejects(head.start(), (e: unknown) => {
      assert.ok(e instanceof UnavailableError, String(e));
      assert.equal(e.code, "INSUFFICIENT_MEMORY");
      assert.match(
        e.message,
        new RegExp(`client head \\(${V} × ${H}, int8: about \\d+ MiB while it loads\\)`),
      );
      assert.ok(!e.message.includes(ck.dir), "the message names no local path");
      assert.deepEqual(e.details, { needBytes: need, availableBytes: need - 1, weights: "int8" });
      assert.match(e.hint ?? "", /more memory/);
      assert.doesNotMatch(e.hint ?? "", /WEIGHTS=int8/, "int8 already");
      return true;
    });
    assert.throws(() => head.info, (e: unknown) => e instanceof RuntimeError && e.code === "NOT_RUNNING");
    // the operator sees it (the API logs a 503 at debug level only)
    const warned = records.filter((r) => r.level === "warn" && /not enough memory/.test(r.msg));
    assert.equal(warned.length, 1);
    assert.equal(warned[0].model, ck.dir);
    available = need; // a retry (the next request) reads the memory again
    await head.start();
    assert.equal(head.info.vocabSize, V);
  } finally {
    await head.stop();
  }
  // float32 files whose config.json says float16: the file's width counts (a float32 table, then the
  // int8 LM head twice, and onnxruntime's copy of both while loading)
  const f32 = await makeBloomCheckpoint({ numLayers: 1, dtype: "F32" });
  assert.equal(f32.config.torch_dtype, "float16");
  const wide = V * H * (4 + 2) + V * H * (4 + 1);
  const f32Head = new OnnxClientHead({
    model: f32.dir,
    weights: "int8",
    availableMemoryBytes: () => wide - 1,
  });
  await assert.rejects(
    f32Head.start(),
    (e: unknown) => e instanceof UnavailableError && (e.details as { needBytes: number }).needBytes === wide,
  );
  await f32Head.stop();
  // unknown memory (no --allow-sys): no check
  const unknown = new OnnxClientHead({ model: ck.dir, availableMemoryBytes: () => undefined });
  await unknown.start();
  await unknown.stop();
});
