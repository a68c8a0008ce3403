import assert from "node:assert/strict";
import { RuntimeError } from "../errors.ts";
import {
  makeBloomCheckpoint,
  makeLlamaCheckpoint,
  makeQwen3Checkpoint,
} from "../../tests/helpers/checkpoint_fixture.ts";
import { maxAbsDiff } from "../../tests/helpers/runtime_reference.ts";
import { fakeHidden } from "../testing/mod.ts";
import type { EngineTensor, StepRequest } from "./engine_types.ts";
import { withEngine } from "../../tests/helpers/kv_engine_fixture.ts";

/** What one session does in one round: a step of `t` tokens (after a rollback to `from`), or a bad step. */
type Op = { t: number; from?: number } | "bad" | "close";

/**
 * Sessions' scripts: session i has batch 2 when i = 1 (so a multi-token step after a past runs row
 * by row), prompts of different lengths, then decode steps; one session takes 3 tokens at once
 * mid-way, one rolls back, one closes while the others step, one sends a refused step.
 */
function scripts(n: number): Op[][] {
  const out: Op[][] = [];
  for (let i = 0; i < n; i++) {
    const ops: Op[] = [{ t: 2 + 3 * (i % 7) }];
    for (let r = 1; r < 6; r++) ops.push({ t: 1 });
    out.push(ops);
  }
  out[0][2] = { t: 3 };
  out[1][3] = { t: 2 }; // batch 2, after a past: row by row, next to the others' decode steps
  out[n - 1][3] = { t: 1, from: 1 };
  if (n > 2) out[2][3] = "close";
  if (n > 3) out[3][4] = "bad";
  return out;
}

const batchOf = (i: number) => i === 1 ? 2 : 1;

const checkpoint = (family: "bloom" | "llama" | "qwen3") =>
  family === "bloom"
    ? makeBloomCheckpoint({ numLayers: 2 })
    : family === "qwen3"
    ? makeQwen3Checkpoint({ numLayers: 2 })
    : makeLlamaCheckpoint({ numLayers: 2 });

for (const family of ["bloom", "llama", "qwen3"] as const) {
  Deno.test(`KvEngine.stepMany (${family}): 2–11 sessions of ragged lengths get their numbers alone (fp32 ≤ 1e-5)`, async () => {
    const ck = await checkpoint(family);
    await withEngine(ck, { head: true }, async (e, L, H) => {
      // 11: more sessions than one batch of 8, prompts and decode steps mixed
      for (const n of [2, 5, 8, 11]) {
        const plan = scripts(n);
        const input = (i: number, r: number, t: number): EngineTensor => ({
          ...fakeHidden(batchOf(i), t, H, 100 * i + r + n),
          shape: [batchOf(i), t, H],
        });
        // alone: every session by itself, one step at a time
        const alone = new Map<string, EngineTensor>();
        for (let i = 0; i < n; i++) {
          e.open(`alone${i}`, 0, L, 32, batchOf(i));
          for (const [r, op] of plan[i].entries()) {
            if (op === "close") break;
            if (op === "bad") continue;
            alone.set(`${i}/${r}`, await e.step(`alone${i}`, input(i, r, op.t), op.from));
          }
          e.close(`alone${i}`);
        }
        for (let i = 0; i < n; i++) e.open(`b${i}`, 0, L, 32, batchOf(i));
        const closed = new Set<number>();
        for (let r = 0; r < 6; r++) {
          const reqs: StepRequest[] = [], who: number[] = [];
          for (let i = 0; i < n; i++) {
            const op = plan[i][r];
            if (op === "close") {
              e.close(`b${i}`); // between its last step and the batch it would have been in
              closed.add(i);
            }
            if (op === "bad") {
              reqs.push({ id: `b${i}`, hidden: input(i, r, 1), startFromPosition: 99 });
            } else if (typeof op === "object" || closed.has(i)) {
              reqs.push({
                id: `b${i}`,
                hidden: input(i, r, typeof op === "object" ? op.t : 1),
                startFromPosition: typeof op === "object" ? op.from : undefined,
              });
            }
            who.push(i);
          }
          const before = reqs.map((q) => e.positionOf(q.id, -1));
          const res = await e.stepMany(reqs);
          res.forEach((x, k) => {
            const i = who[k], op = plan[i][r];
            if (closed.has(i)) {
              assert.ok(
                !x.ok && x.error instanceof RuntimeError && x.error.code === "UNKNOWN_SESSION",
                `closed ${i}`,
              );
            } else if (op === "bad") {
              assert.ok(!x.ok && x.error instanceof RuntimeError && x.error.code === "BAD_INPUT", `bad ${i}`);
              assert.equal(e.positionOf(`b${i}`), before[k], "a refused step leaves its session as it was");
            } else {
              assert.ok(x.ok, `session ${i} round ${r}: ${!x.ok && x.error}`);
              const want = alone.get(`${i}/${r}`)!;
              assert.deepEqual(x.value.shape, want.shape);
              const d = maxAbsDiff(x.value.data, want.data);
              assert.ok(d <= 1e-5, `${n} sessions, session ${i} round ${r}: ${d}`);
            }
          });
        }
        for (let i = 0; i < n; i++) e.close(`b${i}`);
      }
    });
  });

  Deno.test(`KvEngine.stepMany (${family}): greedy tokens of 4 sessions batched are those of each alone`, async () => {
    const ck = await checkpoint(family);
    await withEngine(ck, { head: true }, async (e, L) => {
      const V = e.cfg!.vocabSize;
      const prompts = [[1, 5, 9], [3], [7, 2, 2, 8, 4, 6], [11, 4]].map((p) => p.map((x) => x % V));
      const argmax = (a: Float32Array) => a.reduce((best, x, k) => x > a[best] ? k : best, 0);
      const next = async (hs: EngineTensor[]) => {
        const out: number[] = [];
        for (const h of hs) {
          const [, t, H] = h.shape;
          out.push(argmax((await e.logits(h.data.slice((t - 1) * H, t * H), 1)).data));
        }
        return out;
      };
      const embed = (ids: number[]) => e.embed(Int32Array.from(ids), 1, ids.length);
      const alone: number[][] = [];
      for (const [i, p] of prompts.entries()) {
        e.open(`a${i}`, 0, L, 32, 1);
        const toks = [...p];
        let [tok] = await next([await e.step(`a${i}`, await embed(p))]);
        for (let k = 0; k < 8; k++) {
          toks.push(tok);
          [tok] = await next([await e.step(`a${i}`, await embed([tok]))]);
        }
        alone.push(toks);
        e.close(`a${i}`);
      }
      const toks = prompts.map((p) => [...p]);
      prompts.forEach((_, i) => e.open(`g${i}`, 0, L, 32, 1));
      let last = toks.map((t) => t);
      for (let k = 0; k <= 8; k++) {
        const reqs = await Promise.all(
          last.map(async (ids, i) => ({ id: `g${i}`, hidden: await embed(ids) })),
        );
        const res = await e.stepMany(reqs);
        const tok = await next(res.map((x) => {
          assert.ok(x.ok);
          return x.value;
        }));
        if (k === 8) break;
        tok.forEach((t, i) => toks[i].push(t));
        last = tok.map((t) => [t]);
      }
      assert.deepEqual(toks, alone);
      prompts.forEach((_, i) => e.close(`g${i}`));
    });
  });
}

Deno.test("KvEngine.stepMany: a step that reserves more than the cache holds is TOO_LONG before it runs", async () => {
  await withEngine(await makeBloomCheckpoint({ numLayers: 1 }), { head: true }, async (e, L, H) => {
    e.open("s", 0, L, 8, 1);
    const [r] = await e.stepMany([{
      id: "s",
      hidden: { ...fakeHidden(1, 4, H, 1), shape: [1, 4, H] },
      reserve: 9,
    }]);
    assert.ok(!r.ok && r.error instanceof RuntimeError && r.error.code === "TOO_LONG");
    assert.equal(e.positionOf("s"), 0);
    const twice = await e.stepMany([
      { id: "s", hidden: { ...fakeHidden(1, 1, H, 1), shape: [1, 1, H] } },
      { id: "s", hidden: { ...fakeHidden(1, 1, H, 2), shape: [1, 1, H] } },
    ]);
    assert.ok(twice[0].ok, "the first step of a session runs");
    assert.ok(!twice[1].ok && twice[1].error instanceof RuntimeError && twice[1].error.code === "BAD_INPUT");
    assert.equal(e.positionOf("s"), 1);
  });
});

for (
  const [family, kvCache] of [["bloom", "float32"], ["llama", "float32"], ["bloom", "float16"]] as const
) {
  Deno.test(`KvEngine.stepMany (${family}, ${kvCache} caches): neighbouring slots share attention; a reused slot's session is its own`, async () => {
    await withEngine(await checkpoint(family), { kvCache }, async (e, L, H) => {
      const x = (seed: number, t: number, b = 1): EngineTensor => ({
        ...fakeHidden(b, t, H, seed),
        shape: [b, t, H],
      });
      type Sent = { hidden: EngineTensor; from?: number };
      // what each session was sent, in order, to replay it alone
      const sent = new Map<string, Sent[]>(), got = new Map<string, EngineTensor[]>();
      const round = async (steps: [string, Sent][]) => {
        const res = await e.stepMany(
          steps.map(([id, q]) => ({ id, hidden: q.hidden, startFromPosition: q.from })),
        );
        res.forEach((r, k) => {
          const [id, q] = steps[k];
          assert.ok(r.ok, `${id}: ${!r.ok && r.error}`);
          sent.set(id, [...sent.get(id) ?? [], q]);
          got.set(id, [...got.get(id) ?? [], r.value]);
        });
      };
      const d = (seed: number, from?: number): Sent => ({ hidden: x(seed, 1), from });
      // s0–s2 in slots 0–2 of one slab; w (two rows) with caches of its own beside them
      for (const i of [0, 1, 2]) e.open(`s${i}`, 0, L, 32, 1);
      e.open("w", 0, L, 32, 2);
      assert.equal(e.cacheOf("s0", 0).k.buffer, e.cacheOf("s2", 0).k.buffer, "one slab");
      assert.notEqual(e.cacheOf("s0", 0).k.buffer, e.cacheOf("w", 0).k.buffer);
      await round([["s0", { hidden: x(1, 5) }], ["s1", { hidden: x(2, 2) }], ["s2", { hidden: x(3, 7) }], [
        "w",
        { hidden: x(4, 3, 2) },
      ]]);
      for (let r = 0; r < 2; r++) {
        await round([["s2", d(10 + r)], ["s0", d(20 + r)], ["s1", d(30 + r)], ["w", {
          hidden: x(40 + r, 1, 2),
        }]]);
      }
      e.close("s1");
      e.open("n1", 0, L, 32, 1); // slot 1 again, over s1's stale rows
      const s0 = e.cacheOf("s0", 0).k;
      assert.equal(e.cacheOf("n1", 0).k.byteOffset, s0.byteOffset + s0.byteLength, "the freed slot");
      await round([["n1", { hidden: x(50, 2) }], ["s0", d(51)], ["s2", d(52)]]);
      for (let r = 0; r < 3; r++) await round([["s0", d(60 + r)], ["n1", d(70 + r)], ["s2", d(80 + r)]]);
      // rollbacks inside a shared call
      await round([["s0", d(99, 3)], ["n1", d(98)], ["s2", d(97, 8)]]);
      for (const id of ["s0", "s2", "n1", "w"]) e.close(id);
      for (const [id, steps] of sent) {
        e.open("alone", 0, L, 32, id === "w" ? 2 : 1);
        for (const [k, q] of steps.entries()) {
          const want = await e.step("alone", q.hidden, q.from);
          const diff = maxAbsDiff(got.get(id)![k].data, want.data);
          assert.ok(diff <= 1e-5, `${id} step ${k}: ${diff}`);
        }
        e.close("alone");
      }
    });
  });
}
