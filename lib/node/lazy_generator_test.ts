import assert from "node:assert/strict";
import { FakeGenerator } from "../testing/mod.ts";
import { UnavailableError } from "../errors.ts";
import { LazyGenerator } from "./lazy_generator.ts";

Deno.test("LazyGenerator builds once on first prepare, shares concurrent builds, retries a failed one", async () => {
  let builds = 0;
  let fail = true;
  let closed = 0;
  const lazy = new LazyGenerator({
    model: "m/x",
    build: () => {
      builds++;
      if (fail) return Promise.reject(new Error("no peers yet"));
      return Promise.resolve({ generator: new FakeGenerator(), close: () => Promise.resolve(void closed++) });
    },
  });
  const signal = new AbortController().signal;
  assert.deepEqual(lazy.info(), { model: "m/x", ready: true });
  assert.throws(() => lazy.countTokens("a b"), UnavailableError);
  await assert.rejects(lazy.prepare({ signal }), /no peers yet/);
  fail = false;
  await Promise.all([lazy.prepare({ signal }), lazy.prepare({ signal })]);
  assert.equal(builds, 2, "one failed build, then one shared build");
  assert.equal(lazy.built, true);
  assert.equal(lazy.info().model, "test-org/tiny-model");
  assert.equal(lazy.countTokens("a b"), 2);
  let text = "";
  for await (
    const t of lazy.generate("x", {
      maxNewTokens: 2,
      temperature: 0,
      topP: 1,
      repetitionPenalty: 1,
      doSample: false,
    }, { signal })
  ) {
    text += t.text;
  }
  assert.equal(text, " one two");
  await lazy.close();
  await lazy.close();
  assert.equal(closed, 1);
  await assert.rejects(lazy.prepare({ signal }), /shutting down/);
});

Deno.test("LazyGenerator: the request that started the build gives up; the others still get the model", async () => {
  let release!: () => void;
  const loaded = new Promise<void>((r) => (release = r));
  let buildSignal: AbortSignal | undefined;
  const lazy = new LazyGenerator({
    model: "m/x",
    build: async ({ signal }) => {
      buildSignal = signal;
      await loaded;
      signal.throwIfAborted(); // what the real build does (head start, tokenizer, swarm)
      return { generator: new FakeGenerator() };
    },
  });
  const first = new AbortController();
  const a = lazy.prepare({ signal: first.signal });
  const b = lazy.prepare({ signal: new AbortController().signal });
  first.abort(new Error("client closed the request"));
  await assert.rejects(a, /client closed the request/);
  assert.equal(buildSignal?.aborted, false, "the shared build goes on");
  release();
  await b; // before: rejected with the first client's abort
  assert.equal(lazy.built, true);
  // close() aborts a build in flight
  const again = new LazyGenerator({
    model: "m/x",
    build: ({ signal }) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason))),
  });
  const pending = again.prepare({ signal: new AbortController().signal });
  await again.close();
  await assert.rejects(pending, /shutting down/);
  await lazy.close();
});

Deno.test("LazyGenerator: the model card's created time is the node's, before the build as after", async () => {
  const lazy = new LazyGenerator({
    model: "m/x",
    createdAt: 1_700_000_000,
    build: () => Promise.resolve({ generator: new FakeGenerator() }),
  });
  // before: absent until the build, so GET /v1/models answered the current time on every call
  assert.equal(lazy.info().createdAt, 1_700_000_000);
  await lazy.prepare({ signal: new AbortController().signal });
  assert.equal(lazy.info().createdAt, 1_700_000_000);
});
