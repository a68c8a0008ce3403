import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import { FakeBackend, fakeHidden } from "./fake_backend.ts";
import { concat, slice } from "../../tests/helpers/hidden_tokens.ts";

const H = 8;

async function started(opts = {}): Promise<FakeBackend> {
  const be = new FakeBackend({
    hiddenSize: H,
    numBlocks: 6,
    start: 1,
    end: 5,
    cacheTokens: 1000,
    maxLength: 64,
    ...opts,
  });
  await be.start();
  return be;
}

function code(c: string) {
  return (e: unknown) => e instanceof RuntimeError && e.code === c;
}

Deno.test("FakeBackend: incremental steps equal one forward of the whole sequence, bit for bit", async () => {
  const be = await started();
  const x = fakeHidden(2, 7, H, 3);
  const full = await be.forward(1, 5, x);
  const s = await be.openSession({ start: 1, end: 5, maxLength: 16, batch: 2 });
  const outs = [await s.step(slice(x, 0, 4)), await s.step(slice(x, 4, 5)), await s.step(slice(x, 5, 7))];
  assert.deepEqual(concat(outs).data, full.data);
  assert.equal(s.position, 7);
  // The output really changes the input and depends on the block count.
  assert.notDeepEqual(full.data, x.data);
  assert.notDeepEqual((await be.forward(1, 4, x)).data, full.data);
});

Deno.test("FakeBackend: a span block by block equals the span in one go", async () => {
  const be = await started();
  const x = fakeHidden(1, 5, H, 9);
  let y = x;
  for (let i = 1; i < 5; i++) y = await be.forward(i, i + 1, y);
  assert.deepEqual(y.data, (await be.forward(1, 5, x)).data);
});

Deno.test("FakeBackend: output depends on the cached prefix; rollback equals recomputation", async () => {
  const be = await started();
  const x = fakeHidden(1, 6, H, 5);
  const other = fakeHidden(1, 6, H, 6);
  const s = await be.openSession({ start: 1, end: 5, maxLength: 16, batch: 1 });
  await s.step(slice(x, 0, 5));
  const good = await s.step(slice(x, 5, 6));
  // Same last token after a different prefix → different output.
  const s2 = await be.openSession({ start: 1, end: 5, maxLength: 16, batch: 1 });
  await s2.step(slice(other, 0, 5));
  const diff = await s2.step(slice(x, 5, 6));
  assert.notDeepEqual(diff.data, good.data);
  // Roll s2 back to 0 and replay the right history: equal to the good run.
  const replay = await s2.step(x, { startFromPosition: 0 });
  assert.deepEqual(slice(replay, 5, 6).data, good.data);
  // Speculative-style rollback to 3 then recompute 3..6.
  const again = await s.step(slice(x, 3, 6), { startFromPosition: 3 });
  assert.deepEqual(slice(again, 2, 3).data, good.data);
  assert.equal(s.position, 6);
});

Deno.test("FakeBackend: hypoIds reorder the cache rows", async () => {
  const be = await started();
  const x = fakeHidden(2, 4, H, 11);
  const s = await be.openSession({ start: 1, end: 3, maxLength: 8, batch: 2 });
  await s.step(slice(x, 0, 3));
  const last = slice(x, 3, 4);
  const swapped = {
    data: new Float32Array([...last.data.subarray(H, 2 * H), ...last.data.subarray(0, H)]),
    shape: [2, 1, H] as const,
  };
  const out = await s.step(swapped, { hypoIds: [1, 0] });
  // Reference: row 0 of the output must be row 1 of a straight run.
  const ref = await be.forward(1, 3, x);
  assert.deepEqual(out.data.subarray(0, H), slice(ref, 3, 4).data.subarray(H, 2 * H));
  assert.deepEqual(out.data.subarray(H, 2 * H), slice(ref, 3, 4).data.subarray(0, H));
});

Deno.test("FakeBackend: typed errors, and the backend keeps working after each", async () => {
  const be = await started();
  await assert.rejects(be.openSession({ start: 0, end: 2, maxLength: 8, batch: 1 }), code("BAD_SPAN"));
  await assert.rejects(be.openSession({ start: 1, end: 5, maxLength: 65, batch: 1 }), code("TOO_LONG"));
  const big = await be.openSession({ start: 1, end: 5, maxLength: 64, batch: 3 }); // 768 of 1000
  assert.equal(be.info().cacheTokensLeft, 232);
  await assert.rejects(be.openSession({ start: 1, end: 5, maxLength: 64, batch: 1 }), (e: unknown) => {
    assert.ok(e instanceof RuntimeError && e.code === "CACHE_FULL");
    assert.match(e.message, /256 cache tokens.*232/);
    return true;
  });
  await big.close();
  await big.close();
  assert.equal(be.info().cacheTokensLeft, 1000);
  const s = await be.openSession({ start: 2, end: 4, maxLength: 4, batch: 1 });
  await assert.rejects(s.step(fakeHidden(1, 2, H + 1)), (e: unknown) => {
    assert.ok(e instanceof RuntimeError && e.code === "BAD_INPUT");
    assert.match(e.message, /hidden size 9 .* 8/);
    return true;
  });
  await assert.rejects(s.step(fakeHidden(2, 2, H)), code("BAD_INPUT"));
  const nan = fakeHidden(1, 2, H);
  nan.data[3] = NaN;
  await assert.rejects(s.step(nan), code("BAD_INPUT"));
  await assert.rejects(s.step(fakeHidden(1, 5, H)), code("TOO_LONG"));
  await assert.rejects(s.step(fakeHidden(1, 1, H), { startFromPosition: 1 }), code("BAD_INPUT"));
  await assert.rejects(s.step(fakeHidden(1, 1, H), { hypoIds: [1] }), code("BAD_INPUT"));
  // Still fine after all that.
  const y = await s.step(fakeHidden(1, 4, H));
  assert.equal(y.shape[1], 4);
  assert.equal(be.getSession(s.id), s);
  await s.close();
  assert.equal(be.getSession(s.id), undefined);
  await assert.rejects(s.step(fakeHidden(1, 1, H)), code("UNKNOWN_SESSION"));
  await be.stop();
  await assert.rejects(be.forward(1, 2, fakeHidden(1, 1, H)), code("NOT_RUNNING"));
});

Deno.test("FakeBackend: onCompute can inject failures; stats count tokens", async () => {
  let fail = true;
  const be = await started({
    onCompute: () => {
      if (fail) throw new Error("injected");
    },
  });
  const s = await be.openSession({ start: 1, end: 5, maxLength: 8, batch: 1 });
  await assert.rejects(s.step(fakeHidden(1, 2, H)), /injected/);
  assert.equal(s.position, 0);
  fail = false;
  await s.step(fakeHidden(1, 2, H));
  await be.forward(1, 5, fakeHidden(2, 3, H));
  assert.deepEqual(be.stats, { sessionsOpened: 1, sessionsClosed: 0, steps: 1, forwards: 1, tokens: 8 });
});
