import assert from "node:assert/strict";
import { LOGITS_ROWS_MAX, type LogitsPart, splitRows, stackRows, takeLogits } from "./logits_batch.ts";

type J = { op: "logits" | "embed" | "load"; part?: LogitsPart; name: string };
const logits = (name: string, batch: number): J => ({
  op: "logits",
  name,
  part: { hidden: new Float32Array(batch * 2).fill(batch), batch },
});

Deno.test("takeLogits: the queue's logits requests in order, past free jobs, up to a barrier and the row cap", () => {
  const partOf = (j: J) => j.part, stop = (j: J) => j.op === "load";
  const q: J[] = [
    logits("a", 1),
    { op: "embed", name: "e" },
    logits("b", 2),
    { op: "load", name: "l" },
    logits("c", 1),
  ];
  assert.deepEqual(takeLogits(q, partOf, stop).map((j) => j.name), ["a", "b"]);
  assert.deepEqual(q.map((j) => j.name), ["e", "l", "c"], "the rest stays, in order");
  const many: J[] = Array.from({ length: 40 }, (_, i) => logits(`r${i}`, 1));
  assert.equal(takeLogits(many, partOf, stop).length, LOGITS_ROWS_MAX);
  assert.equal(many.length, 40 - LOGITS_ROWS_MAX);
  const big: J[] = [logits("big", LOGITS_ROWS_MAX + 5), logits("next", 1)];
  assert.deepEqual(
    takeLogits(big, partOf, stop).map((j) => j.name),
    ["big"],
    "one request alone may exceed it",
  );
  assert.deepEqual(takeLogits([{ op: "embed", name: "e" }], partOf, stop), []);
});

Deno.test("stackRows and splitRows: rows in order, each answer its own copy", () => {
  const H = 2, V = 3;
  const parts = [
    { hidden: Float32Array.from([1, 2]), batch: 1 },
    { hidden: Float32Array.from([3, 4, 5, 6, 99]), batch: 2 }, // a longer buffer: only B × H is taken
  ];
  assert.deepEqual([...stackRows(parts, H)], [1, 2, 3, 4, 5, 6]);
  const out = Float32Array.from({ length: 9 }, (_, i) => i);
  const [a, b] = splitRows(out, [1, 2], V);
  assert.deepEqual([...a.data], [0, 1, 2]);
  assert.deepEqual(a.shape, [1, 3]);
  assert.deepEqual([...b.data], [3, 4, 5, 6, 7, 8]);
  assert.deepEqual(b.shape, [2, 3]);
  out[0] = -1;
  assert.equal(a.data[0], 0, "a copy, not a view of the shared output");
  assert.equal(a.data.buffer.byteLength, 12, "each owns exactly its buffer (transferred to the main thread)");
});
