import assert from "node:assert/strict";
import {
  CacheSlabs,
  SLAB_MIN_BYTES,
  SLAB_MIN_LENGTH,
  SLAB_SLOTS,
  slabLength,
  slotRuns,
  type SlotStep,
} from "./kv_slab.ts";

Deno.test("slabLength: a power of two at least maxLength, from SLAB_MIN_LENGTH, never past the cap", () => {
  assert.equal(slabLength(1, 8192), SLAB_MIN_LENGTH);
  assert.equal(slabLength(SLAB_MIN_LENGTH, 8192), SLAB_MIN_LENGTH);
  assert.equal(slabLength(65, 8192), 128);
  assert.equal(slabLength(200, 8192), 256);
  assert.equal(slabLength(2048, 8192), 2048);
  assert.equal(slabLength(3000, 3000), 3000, "the cap is the engine's longest session");
  assert.equal(slabLength(2100, 3000), 3000);
  for (let m = 1; m <= 5000; m += 37) {
    const l = slabLength(m, 5000);
    assert.ok(
      l >= m && l <= Math.max(m, 5000) && l < 2 * Math.max(m, SLAB_MIN_LENGTH),
      `maxLength ${m} → ${l}`,
    );
  }
});

Deno.test("CacheSlabs: sessions take the lowest free slot; a slot's caches are views side by side", () => {
  const made: number[] = [];
  const slabs = new CacheSlabs((n) => (made.push(n), new Float32Array(n)));
  const n = 12;
  const a = slabs.take(n), b = slabs.take(n), c = slabs.take(n);
  assert.deepEqual([a.index, b.index, c.index], [0, 1, 2]);
  assert.equal(a.slab, b.slab);
  const ca = slabs.caches(a, 5), cb = slabs.caches(b, 5);
  const len = Math.max(SLAB_SLOTS * n, SLAB_MIN_BYTES / 2); // at least SLAB_MIN_BYTES: fresh pages
  assert.deepEqual(made, [len, len], "one K and one V array per block, made when first asked");
  assert.equal(ca.k.buffer, cb.k.buffer);
  assert.equal(ca.k.length, n);
  assert.equal(cb.k.byteOffset - ca.k.byteOffset, n * 4, "slot 1 follows slot 0");
  assert.notEqual(ca.k.buffer, ca.v.buffer);
  slabs.caches(c, 5);
  // a view over neighbouring slots is the same memory
  const both = slabs.span(a, 2, 5);
  assert.equal(both.k.length, 2 * n);
  both.k[n] = 7;
  assert.equal(cb.k[0], 7);
  // another block is another array
  assert.notEqual(slabs.caches(a, 6).k.buffer, ca.k.buffer);
  // a freed slot is taken again before any higher one
  slabs.give(b);
  assert.equal(slabs.take(n).index, 1);
  // another size is another slab
  assert.notEqual(slabs.take(2 * n).slab, a.slab);
});

Deno.test("CacheSlabs: a full slab starts the next; an empty slab goes unless it is the last free one", () => {
  const slabs = new CacheSlabs((n) => new Float32Array(n), { slots: 2 });
  const s = [slabs.take(4), slabs.take(4), slabs.take(4), slabs.take(4), slabs.take(4)];
  assert.deepEqual(s.map((x) => x.index), [0, 1, 0, 1, 0]);
  assert.equal(slabs.count, 3);
  slabs.give(s[4]); // its slab is empty, and the only empty one: kept
  assert.equal(slabs.count, 3);
  slabs.give(s[2]);
  slabs.give(s[3]); // a second empty slab: dropped
  assert.equal(slabs.count, 2);
  assert.equal(slabs.take(4).slab, s[4].slab, "the kept slab is reused");
  slabs.clear();
  assert.equal(slabs.count, 0);
});

Deno.test("slotRuns: decode steps of neighbouring slots run together, in slot order; other steps alone, after", () => {
  const slabs = new CacheSlabs((n) => new Float32Array(n), { slots: 4 });
  const x = Array.from({ length: 7 }, () => slabs.take(8)); // slab A: slots 0..3, slab B: 0..2
  const steps: SlotStep[] = [
    { slot: x[2], tokens: 1 }, // 0: A2
    { tokens: 1 }, // 1: a session with B > 1
    { slot: x[0], tokens: 1 }, // 2: A0
    { slot: x[6], tokens: 5 }, // 3: a prompt chunk in B2
    { slot: x[5], tokens: 1 }, // 4: B1
    { slot: x[1], tokens: 1 }, // 5: A1
    { slot: x[4], tokens: 1 }, // 6: B0
    { slot: x[3], tokens: 1 }, // 7: A3
  ];
  assert.deepEqual(slotRuns(steps), [[2, 5, 0, 7], [6, 4], [1], [3]]);
  // a gap splits a run
  assert.deepEqual(slotRuns([{ slot: x[3], tokens: 1 }, { slot: x[0], tokens: 1 }]), [[1], [0]]);
  assert.deepEqual(slotRuns([]), []);
});

Deno.test("CacheSlabs: freed slots stay committed up to keepBytes; beyond, their memory is released", () => {
  const released: Float32Array[] = [];
  const slabs = new CacheSlabs((n) => new Float32Array(n), {
    slots: 4,
    keepBytes: 2 * 2 * 16 * 4, // two slots' K and V of one block, 16 floats each
    release: (a) => void released.push(a as Float32Array),
  });
  const s = [0, 1, 2, 3].map(() => slabs.take(16));
  for (const x of s) slabs.caches(x, 0);
  slabs.give(s[0]);
  slabs.give(s[1]);
  assert.equal(slabs.keptBytes, 2 * 2 * 16 * 4);
  assert.equal(released.length, 0);
  slabs.give(s[2]); // over the bound: its K and V go back
  assert.equal(released.length, 2);
  assert.deepEqual(released.map((a) => [a.length, a.byteOffset]), [[16, 2 * 16 * 4], [16, 2 * 16 * 4]]);
  assert.equal(slabs.keptBytes, 2 * 2 * 16 * 4);
  const again = slabs.take(16); // slot 0, kept: no longer counted
  assert.equal(again.index, 0);
  assert.equal(slabs.keptBytes, 2 * 16 * 4);
  // a dropped slab takes its kept slots with it
  const other = [0, 1, 2, 3].map(() => slabs.take(16)); // slots 1 and 2, then a second slab
  for (const x of other) slabs.caches(x, 0);
  slabs.give(other[2]);
  slabs.give(other[3]);
  for (const x of [again, ...s.slice(3), other[0], other[1]]) slabs.give(x);
  assert.equal(slabs.count, 1, "one empty slab is kept");
  assert.ok(slabs.keptBytes <= 2 * 2 * 16 * 4);
});
