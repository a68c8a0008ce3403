import assert from "node:assert/strict";
import {
  chooseBestBlocks,
  chooseBestStart,
  computeCoverage,
  parseBlockIndices,
  type SelectionSpan,
  shouldChooseOtherBlocks,
} from "./block_selection.ts";

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("block selection: lexicographically smallest sorted window, ties to the lowest start", () => {
  assert.equal(chooseBestStart([0, 0, 0, 0], 2), 0);
  assert.equal(chooseBestStart([5, 5, 0, 0], 2), 2);
  assert.equal(chooseBestStart([1, 0, 3, 0, 1], 2), 0); // [0,1] < [0,3] = [0,3] > [0,1] at 3 → first wins
  assert.equal(chooseBestStart([2, 9, 0, 9, 1, 1], 3), 2); // [0,1,9] beats [0,9,9] and [1,1,9]
  assert.throws(() => chooseBestStart([0, 0], 3), RangeError);
});

Deno.test("block selection: servers starting one after another on 24 blocks, 6 each, cover all 24", () => {
  const spans: SelectionSpan[] = [];
  for (let i = 0; i < 4; i++) {
    const { start, end } = chooseBestBlocks(spans, 24, 6);
    spans.push({ peerId: `p${i}`, start, end, throughput: 10 });
  }
  assert.deepEqual(spans.map((s) => s.start), [0, 6, 12, 18]);
  assert.ok(computeCoverage(spans, 24).every((c) => c > 0));
  // with unequal throughputs and more servers, every block stays covered
  const more: SelectionSpan[] = [];
  const rnd = seeded(7);
  for (let i = 0; i < 10; i++) {
    const { start, end } = chooseBestBlocks(more, 24, 6);
    more.push({ peerId: `q${i}`, start, end, throughput: 5 + rnd() * 20 });
    if (i >= 3) assert.ok(computeCoverage(more, 24).every((c) => c > 0), `after ${i + 1} servers`);
  }
});

Deno.test("rebalancing: a lopsided swarm moves a server and never uncovers a block", () => {
  // blocks 0..11; three servers pile on 0..5, one covers 6..11
  const spans: SelectionSpan[] = [
    { peerId: "a", start: 0, end: 6, throughput: 10 },
    { peerId: "b", start: 0, end: 6, throughput: 10 },
    { peerId: "c", start: 0, end: 6, throughput: 10 },
    { peerId: "d", start: 6, end: 12, throughput: 10 },
  ];
  const d = shouldChooseOtherBlocks(spans, "a", 12, { random: seeded(1) });
  assert.equal(d.move, true, d.reason);
  assert.equal(d.start, 6);
  assert.ok(d.simulatedMin! > d.initialMin);
  const moved = spans.map((s) => s.peerId === "a" ? { ...s, start: d.start!, end: d.end! } : s);
  assert.ok(computeCoverage(moved, 12).every((c) => c > 0));
  // the lone server of 6..11 must not move: it would uncover blocks
  const stay = shouldChooseOtherBlocks(spans, "d", 12, { random: seeded(1) });
  assert.equal(stay.move, false);
  assert.match(stay.reason, /uncover/);
  // balanced swarm: nobody moves
  const balanced = [spans[0], spans[3]];
  assert.equal(shouldChooseOtherBlocks(balanced, "a", 12).move, false);
  // a small gain (below 1/0.75) does not move
  const small: SelectionSpan[] = [
    { peerId: "a", start: 0, end: 6, throughput: 10 },
    { peerId: "b", start: 0, end: 6, throughput: 1 },
    { peerId: "c", start: 6, end: 12, throughput: 10 },
  ];
  assert.equal(shouldChooseOtherBlocks(small, "b", 12, { random: seeded(3) }).move, false);
});

Deno.test("block indices: a:b parsing with the offending value", () => {
  assert.deepEqual(parseBlockIndices("3:9"), { start: 3, end: 9 });
  assert.throws(() => parseBlockIndices("9:3"), /"9:3"/);
  assert.throws(() => parseBlockIndices("0:30", 24), /≤ 24/);
  assert.throws(() => parseBlockIndices("x"), RangeError);
});
