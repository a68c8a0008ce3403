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
