import assert from "node:assert/strict";
import type { StepResult } from "./engine_types.ts";
import {
  type BatchOptions,
  BatchPeers,
  type JobKind,
  type PendingStep,
  readySessions,
  settlePart,
  takeBatch,
} from "./batch_scheduler.ts";

const H = 2;

/** A step of `t` tokens of batch `b` whose value at (row, token, k) is row·1000 + token·10 + k. */
function step(id: string, t: number, o: { b?: number; from?: number } = {}): { step: PendingStep } {
  const b = o.b ?? 1, data = new Float32Array(b * t * H);
  for (let r = 0; r < b; r++) {
    for (let i = 0; i < t; i++) for (let k = 0; k < H; k++) data[(r * t + i) * H + k] = r * 1000 + i * 10 + k;
  }
  return {
    step: { id, hidden: { data, shape: [b, t, H] }, startFromPosition: o.from, queuedAt: 0, done: 0 },
  };
}

const O: BatchOptions = { chunkTokens: 8, maxSessions: 4 };
const kindOf = (j: JobKind) => j;
const ids = (parts: { step: PendingStep }[]) => parts.map((p) => p.step.id);

Deno.test("takeBatch: the ready steps of distinct sessions, in queue order; the rest stays queued in order", () => {
  const a1 = step("a", 1), b1 = step("b", 1), a2 = step("a", 1), c1 = step("c", 1);
  const embed: JobKind = { free: true };
  const q: JobKind[] = [a1, b1, a2, embed, c1];
  const parts = takeBatch(q, kindOf, O);
  assert.deepEqual(
    ids(parts),
    ["a", "b", "c"],
    "a's second step waits for its first; embeddings don't block",
  );
  assert.deepEqual(q, [a2, embed], "what was not taken keeps its order");
  assert.equal(parts[0].req.hidden, a1.step.hidden, "a whole decode step is passed as it is");
});

Deno.test("takeBatch: a job on a session holds that session's later steps; a barrier holds everything behind it", () => {
  const close: JobKind = { session: "b" }, barrier: JobKind = { barrier: true };
  const q: JobKind[] = [step("a", 1), close, step("b", 1), step("c", 1), barrier, step("d", 1)];
  assert.deepEqual(ids(takeBatch(q, kindOf, O)), ["a", "c"]);
  assert.equal(q.length, 4);
  assert.equal(q[0], close);
  assert.equal(readySessions(q, kindOf), 1, "b (d is behind the barrier)");
});

Deno.test("takeBatch: at most maxSessions sessions; the others go next time", () => {
  const q: JobKind[] = ["a", "b", "c", "d", "e", "f"].map((id) => step(id, 1));
  assert.deepEqual(ids(takeBatch(q, kindOf, O)), ["a", "b", "c", "d"]);
  assert.deepEqual(ids(takeBatch(q, kindOf, O)), ["e", "f"]);
  assert.equal(q.length, 0);
});

Deno.test("takeBatch + settlePart: a long prompt runs in chunks with the decode steps between; its output is whole", () => {
  const long = step("p", 20, { b: 2, from: 3 });
  const q: JobKind[] = [long, step("a", 1)];
  const seen: { tokens: number[]; from: (number | undefined)[]; reserve: (number | undefined)[] }[] = [];
  for (let round = 0; q.length > 0; round++) {
    const parts = takeBatch(q, kindOf, O);
    seen.push({
      tokens: parts.map((p) => p.tokens),
      from: parts.map((p) => p.req.startFromPosition),
      reserve: parts.map((p) => p.req.reserve),
    });
    const again: JobKind[] = [];
    for (const p of parts) {
      // the "engine" returns the input chunk + 0.5, so the assembled output must be the input + 0.5
      const r: StepResult = {
        ok: true,
        value: { data: p.req.hidden.data.map((x) => x + 0.5), shape: p.req.hidden.shape },
      };
      const s = settlePart(p, r);
      if (s.state === "more") again.push(p.job);
      else if (s.state === "done" && p.step.id === "p") {
        assert.deepEqual([...s.value.data], [...long.step.hidden.data].map((x) => x + 0.5));
        assert.deepEqual(s.value.shape, [2, 20, H]);
      }
    }
    q.unshift(...again);
    if (round === 0) q.push(step("b", 1)); // a decode step that arrives during the first chunk
  }
  assert.deepEqual(seen.map((s) => s.tokens), [[8, 1], [8, 1], [4]]);
  assert.deepEqual(seen[0].from, [3, undefined], "the rollback goes with the first chunk only");
  assert.deepEqual(seen[1].from, [undefined, undefined]);
  assert.deepEqual(seen[0].reserve, [20, undefined], "the first chunk reserves the whole prompt");
});

Deno.test("takeBatch: prompts share one chunk budget per batch; decode steps always fit", () => {
  const q: JobKind[] = [step("p", 6), step("q", 6), step("a", 1), step("r", 6)];
  const parts = takeBatch(q, kindOf, O);
  assert.deepEqual(parts.map((p) => [p.step.id, p.tokens]), [["p", 6], ["q", 2], ["a", 1]]);
  assert.deepEqual(ids(q.map((j) => j as { step: PendingStep })), ["r"]);
});

Deno.test("settlePart: a failed chunk fails the step", () => {
  const q: JobKind[] = [step("p", 20)];
  const [p] = takeBatch(q, kindOf, O);
  const err = new Error("boom");
  assert.deepEqual(settlePart(p, { ok: false, error: err }), { state: "failed", error: err });
});

Deno.test("BatchPeers: the open sessions of the last two batches, none after a wait in vain for 2 batches", () => {
  const p = new BatchPeers();
  assert.equal(p.expected(), 0, "nothing ran yet");
  p.ran(["a"]);
  assert.equal(p.expected(), 0, "one session waits for no one");
  p.ran(["b"]);
  assert.equal(p.expected(), 2, "a and b took turns: wait for both");
  p.ran(["a", "c"]);
  assert.equal(p.expected(), 3, "b from the batch before, a and c from the last");
  p.ran(["c"]);
  assert.equal(p.expected(), 2, "b is out of the last two batches");
  p.inVain();
  assert.equal(p.expected(), 0);
  assert.equal(p.expected(), 0);
  assert.equal(p.expected(), 2, "waiting again after 2 batches");
  // a client's sessions one after another: its next session does not wait for the one it closed
  const q = new BatchPeers();
  q.ran(["old"]);
  q.closed("old");
  q.ran(["new"]);
  assert.equal(q.expected(), 0);
  q.ran(["other", "new"]);
  q.closed("other");
  assert.equal(q.expected(), 0, "closed in the last batch too");
});
