import assert from "node:assert/strict";
import { HubError, RuntimeError } from "../lib/errors.ts";
import { hubFile } from "../lib/runtime/hub_download.ts";
import { createBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";
import { HubServer } from "./helpers/hub_server.ts";
import { fromSeq, maxAbsDiff, referenceSpan, toSeq } from "./helpers/runtime_reference.ts";

const REPO = "org/bloom-tiny";
const TOKEN = "hf_test_token_123456";

Deno.test("hub downloads: only needed shards, HF cache layout, cache hit without requests, resume, 401/404", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 4, shards: 3 });
  await using hub = await HubServer.start({ repos: { [REPO]: ck.dir }, token: TOKEN });
  const hfHome = await Deno.makeTempDir({ prefix: "plumise-hf-" });
  const source = { model: REPO, hfEndpoint: hub.url, hfToken: TOKEN, hfHome };
  // Block 2 lives in shard 2 of 3 only.
  const rt = createBlockRuntime({ ...source, start: 2, end: 3, weights: "fp32", cacheTokens: 1000 });
  await rt.start();
  try {
    assert.equal(hub.downloads("config.json"), 1);
    assert.equal(hub.downloads("model.safetensors.index.json"), 1);
    assert.equal(hub.downloads("model-00002-of-00003.safetensors"), 1);
    assert.equal(hub.requestsFor("model-00001-of-00003.safetensors"), 0);
    assert.equal(hub.requestsFor("model-00003-of-00003.safetensors"), 0);
    assert.equal(hub.requestsFor("tokenizer.json"), 0);
    // Auth went to the hub, not to nothing.
    assert.ok(
      hub.requests.filter((r) => r.path.includes("/resolve/")).every((r) =>
        r.authorization === `Bearer ${TOKEN}`
      ),
    );
    // The blocks computed from the downloaded shard are right.
    const x = fakeHidden(1, 4, 48, 3);
    const y = await rt.forward(2, 3, x);
    const ref = fromSeq(referenceSpan(ck, 2, 3, toSeq(x.data, 1, 4, 48)));
    assert.ok(maxAbsDiff(y.data, ref) <= 1e-4);
    assert.equal(rt.info().revision, "main");
  } finally {
    await rt.stop();
  }
  // HF cache layout shared with Python tools.
  const repoDir = `${hfHome}/hub/models--org--bloom-tiny`;
  const commit = hub.commitOf(REPO);
  assert.equal((await Deno.readTextFile(`${repoDir}/refs/main`)).trim(), commit);
  const link = await Deno.readLink(`${repoDir}/snapshots/${commit}/model-00002-of-00003.safetensors`);
  assert.match(link, /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
  assert.deepEqual(
    await Deno.readFile(`${repoDir}/snapshots/${commit}/model-00002-of-00003.safetensors`),
    await Deno.readFile(`${ck.dir}/model-00002-of-00003.safetensors`),
  );

  // Second load: everything from the cache, not a single request.
  const before = hub.requests.length;
  const rt2 = createBlockRuntime({ ...source, start: 2, end: 3, weights: "fp32", cacheTokens: 1000 });
  await rt2.start();
  await rt2.stop();
  assert.equal(hub.requests.length, before, "second load made no request");

  // Interrupted download resumes with a Range request and ends with the right bytes.
  const hfHome2 = await Deno.makeTempDir({ prefix: "plumise-hf-" });
  const shard = "model-00001-of-00003.safetensors";
  hub.interruptNext(shard, 3000);
  const path = await hubFile({ repo: REPO, file: shard, endpoint: hub.url, token: TOKEN, hfHome: hfHome2 });
  assert.deepEqual(await Deno.readFile(path), await Deno.readFile(`${ck.dir}/${shard}`));
  const ranged = hub.requests.filter((r) => r.file === shard && r.status === 206);
  assert.equal(ranged.length, 1, "one resumed request");
  assert.match(ranged[0].range ?? "", /^bytes=[1-9]\d*-$/);
  assert.equal(hub.downloads(shard), 2, "the cut transfer and the resumed one");

  // 401 without a token, naming repo and file.
  await assert.rejects(
    createBlockRuntime({
      model: REPO,
      hfEndpoint: hub.url,
      hfHome: hfHome2 + "-x",
      start: 0,
      end: 1,
      weights: "fp32",
    }).start(),
    (e: unknown) => {
      assert.ok(e instanceof HubError && e.code === "HUB_UNAUTHORIZED");
      assert.match(e.message, /org\/bloom-tiny\/config\.json/);
      assert.match(e.hint, /HF_TOKEN/);
      assert.ok(!e.message.includes(TOKEN));
      return true;
    },
  );
  // 404 for a missing file and for a missing repo.
  await assert.rejects(
    hubFile({ repo: REPO, file: "nope.bin", endpoint: hub.url, token: TOKEN, hfHome: hfHome2 }),
    (e: unknown) => {
      assert.ok(e instanceof HubError && e.code === "HUB_NOT_FOUND");
      assert.match(e.message, /nope\.bin.*org\/bloom-tiny/);
      return true;
    },
  );
  await assert.rejects(
    hubFile({ repo: "org/missing", file: "config.json", endpoint: hub.url, token: TOKEN, hfHome: hfHome2 }),
    (e: unknown) => {
      assert.ok(e instanceof HubError && e.code === "HUB_NOT_FOUND");
      assert.match(e.message, /org\/missing/);
      return true;
    },
  );
  // A span outside the model is a typed error before any shard download.
  await assert.rejects(
    createBlockRuntime({ ...source, start: 3, end: 9, weights: "fp32" }).start(),
    (e: unknown) => e instanceof RuntimeError && e.code === "BAD_SPAN" && /\[3, 9\)/.test(e.message),
  );
  await Deno.remove(hfHome, { recursive: true });
  await Deno.remove(hfHome2, { recursive: true });
});

Deno.test("hub downloads: relative redirects (the hub's resolve cache) are followed for small files", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 2, shards: 1 });
  await using hub = await HubServer.start({ repos: { "org/rel": ck.dir }, relativeRedirects: true });
  const hfHome = await Deno.makeTempDir({ prefix: "plumise-hf-" });
  const rt = createBlockRuntime({
    model: "org/rel",
    hfEndpoint: hub.url,
    hfHome,
    start: 0,
    end: 2,
    weights: "fp32",
    cacheTokens: 100,
  });
  await rt.start();
  await rt.stop();
  assert.ok(hub.requests.some((r) => r.status === 307 && r.file === "config.json"));
  assert.equal(hub.downloads("config.json"), 1);
  assert.equal(hub.downloads("model.safetensors"), 1);
  const commit = hub.commitOf("org/rel");
  assert.deepEqual(
    await Deno.readFile(`${hfHome}/hub/models--org--rel/snapshots/${commit}/config.json`),
    await Deno.readFile(`${ck.dir}/config.json`),
  );
  await Deno.remove(hfHome, { recursive: true });
});
