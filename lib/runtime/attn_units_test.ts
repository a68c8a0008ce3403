import assert from "node:assert/strict";
import { alibiRows, slotUnit, type UnitContext } from "./attn_units.ts";
import { alibiBias } from "./kv_block_graph.ts";
import { CacheSlabs } from "./kv_slab.ts";
import { OrtApi, type OrtTensor, TensorType } from "./native/ort_api.ts";
import { resolveOrtLibrary } from "./native/ort_library_path.ts";

const slopes = Float32Array.of(0.5, 0.25, 0.125);

Deno.test("alibiRows: each row holds the bias its one-token step gets alone", () => {
  const ps = [4, 0, 9], total = 10;
  const rows = alibiRows(slopes, ps, total);
  assert.equal(rows.length, ps.length * slopes.length * total);
  ps.forEach((p, r) => {
    const alone = alibiBias(slopes, 1, p + 1); // [N, 1, p + 1]
    for (let h = 0; h < slopes.length; h++) {
      const got = rows.subarray((r * slopes.length + h) * total, (r * slopes.length + h) * total + p + 1);
      assert.deepEqual([...got], [...alone.subarray(h * (p + 1), (h + 1) * (p + 1))], `row ${r} head ${h}`);
    }
  });
});

Deno.test("slotUnit: one unit over neighbouring slots, each row with its own length (BLOOM and Llama inputs)", async () => {
  const api = OrtApi.load(await resolveOrtLibrary());
  const kept: OrtTensor[] = [];
  try {
    const kvHeads = 2, headDim = 8, L = 16, n = kvHeads * L * headDim;
    const slabs = new CacheSlabs((m) => new Float32Array(m));
    const slots = [slabs.take(n), slabs.take(n), slabs.take(n)];
    for (const s of slots) for (const b of [3, 4]) slabs.caches(s, b);
    const base = {
      api,
      slabs,
      kvHeads,
      headDim,
      cacheTensor: (a, shape) => api.tensor(a, shape, TensorType.FLOAT),
      keep: (x) => (kept.push(x), x),
    } satisfies Partial<UnitContext>;
    // slots 1 and 2 of a span starting at block 3, at positions 7 and 2
    const xs = [{ s: { slot: slots[1], start: 3 }, p: 7 }, { s: { slot: slots[2], start: 3 }, p: 2 }];
    const bloom = slotUnit({ ...base, slopes }, xs, 5);
    assert.deepEqual([bloom.rows, bloom.tokens, bloom.offset], [2, 1, 5]);
    const [seqlens, total, bias] = bloom.extra;
    assert.deepEqual([...seqlens.data], [7, 2], "seqlens_k: each row's past");
    assert.deepEqual([...total.data], [8], "total_length: the longest row's");
    assert.deepEqual(bias.shape, [2, slopes.length, 1, 8]);
    assert.deepEqual([...bias.data], [...alibiRows(slopes, [7, 2], 8)]);
    // block j of the span is block 3 + j: one view over both slots
    const k = bloom.k(1);
    assert.deepEqual(k.shape, [2, kvHeads, L, headDim]);
    assert.equal(k.data.buffer, slabs.caches(slots[1], 4).k.buffer);
    assert.equal(k.data.byteOffset, slabs.caches(slots[1], 4).k.byteOffset);
    assert.equal(k.data.length, 2 * n);
    const cos = api.tensor(new Float32Array(4), [1, 4], TensorType.FLOAT);
    const sin = api.tensor(new Float32Array(4), [1, 4], TensorType.FLOAT);
    kept.push(cos, sin);
    const llama = slotUnit({ ...base, rope: { cos, sin } }, xs, 0);
    assert.deepEqual(llama.extra.slice(2), [cos, sin], "RoPE: the shared tables, positions from seqlens");
  } finally {
    for (const t of kept) t.release();
    api.dispose();
  }
});
