/**
 * Cache slots of one-row sessions, side by side in memory (docs/architecture.md, "Continuous
 * batching"). A slab holds `SLAB_SLOTS` sessions' K (or V) caches of one block as one array of
 * `[slots, KVH, L, D]`; a session takes the same slot in every block of its span. The decode steps
 * of sessions in neighbouring slots of a slab then run as one attention call over `[rows, KVH, L,
 * D]`, which onnxruntime spreads over its pool, instead of one call per session on the calling
 * thread.
 *
 * L is a length class (`slabLength`): the session's `maxLength` rounded up to a power of two, so
 * that sessions of similar lengths share slabs. The memory a session touches is still its own
 * `maxLength` per head: a slab's array is allocated zeroed, and the kernel reads and writes only
 * the positions a session has reached, so the pages past them are never touched.
 * @module
 */
import type { CacheArray } from "./kv_cache_pool.ts";

/** Sessions per slab. */
export const SLAB_SLOTS = 16;

/**
 * Bytes a slab's array takes at least (counting 2-byte elements): more than glibc's largest mmap
 * threshold (32 MiB), so the allocator always maps fresh zero pages for it and nothing is committed
 * before a session writes it. A smaller array may come from heap memory used before, which calloc
 * must clear page by page: a short session's slab then committed all its slots at once
 * (docs/benchmarks.md, "Continuous batching").
 */
export const SLAB_MIN_BYTES = 40 * 2 ** 20;

/** The shortest length class. */
export const SLAB_MIN_LENGTH = 64;

/** The cache length of a one-row session of `maxLength` positions: a power of two, capped at `cap`. */
export function slabLength(maxLength: number, cap: number): number {
  let l = SLAB_MIN_LENGTH;
  while (l < maxLength) l *= 2;
  return Math.max(maxLength, Math.min(l, cap));
}

/** One slab: per block, a K and a V array of `slots × n` elements, made when a session first needs them. */
export interface Slab {
  readonly id: number;
  /** Elements of one slot's cache of one block (`KVH × L × D`). */
  readonly n: number;
  readonly used: boolean[];
  /** Per free slot, the bytes of its caches still committed and kept for reuse (0: none). */
  readonly kept: number[];
  readonly k: Map<number, CacheArray>;
  readonly v: Map<number, CacheArray>;
}

/** A session's place: slot `index` of `slab`. */
export interface SlabSlot {
  readonly slab: Slab;
  readonly index: number;
}

/** How a `CacheSlabs` holds memory. */
export interface SlabOptions {
  /** Sessions per slab (default `SLAB_SLOTS`). */
  slots?: number;
  /**
   * Bytes of closed sessions' slots kept committed for the next sessions (default unbounded);
   * beyond them a freed slot's memory goes back to the kernel through `release`.
   */
  keepBytes?: number;
  /** Returns the pages under a view to the kernel (_page_release.ts); none: memory is kept. */
  release?: (a: CacheArray) => void;
}

/** The slabs of an engine, by slot size. */
export class CacheSlabs {
  readonly #slabs = new Map<number, Slab[]>();
  #ids = 0;
  #keptBytes = 0;
  readonly slots: number;
  readonly #keep: number;
  readonly #release?: (a: CacheArray) => void;

  /** `make(n)` allocates a zeroed array of `n` elements. */
  constructor(readonly make: (n: number) => CacheArray, o: SlabOptions = {}) {
    this.slots = o.slots ?? SLAB_SLOTS;
    this.#keep = o.keepBytes ?? Infinity;
    this.#release = o.release;
  }

  /** The lowest free slot of size `n` (a new slab when every slab of that size is full). */
  take(n: number): SlabSlot {
    let list = this.#slabs.get(n);
    if (!list) this.#slabs.set(n, list = []);
    for (const slab of list) {
      const index = slab.used.indexOf(false);
      if (index >= 0) {
        slab.used[index] = true;
        this.#keptBytes -= slab.kept[index];
        slab.kept[index] = 0;
        return { slab, index };
      }
    }
    const slab: Slab = {
      id: this.#ids++,
      n,
      used: new Array(this.slots).fill(false),
      kept: new Array(this.slots).fill(0),
      k: new Map(),
      v: new Map(),
    };
    list.push(slab);
    slab.used[0] = true;
    return { slab, index: 0 };
  }

  /** Slot `s`'s K and V caches of block `block` (views into the slab's arrays). */
  caches(s: SlabSlot, block: number): { k: CacheArray; v: CacheArray } {
    const view = (m: Map<number, CacheArray>) => {
      let a = m.get(block);
      if (!a) m.set(block, a = this.make(Math.max(this.slots * s.slab.n, SLAB_MIN_BYTES / 2)));
      return a.subarray(s.index * s.slab.n, (s.index + 1) * s.slab.n);
    };
    return { k: view(s.slab.k), v: view(s.slab.v) };
  }

  /**
   * The caches of `rows` neighbouring slots of block `block` from `first` (one view over them all;
   * the slots must have had `caches` called for that block).
   */
  span(first: SlabSlot, rows: number, block: number): { k: CacheArray; v: CacheArray } {
    const n = first.slab.n, from = first.index * n, to = (first.index + rows) * n;
    return { k: first.slab.k.get(block)!.subarray(from, to), v: first.slab.v.get(block)!.subarray(from, to) };
  }

  /**
   * Frees slot `s`. Its memory stays committed for the next session while the kept slots add up to
   * `keepBytes`, and goes back to the kernel otherwise. A slab left empty is dropped unless it is
   * the only empty one of its size (kept so that a server whose one client opens and closes
   * sessions in turn reuses memory it already touched).
   */
  give(s: SlabSlot): void {
    const slab = s.slab;
    slab.used[s.index] = false;
    const arrays = [...slab.k.values(), ...slab.v.values()];
    const bytes = arrays.reduce((sum, a) => sum + slab.n * a.BYTES_PER_ELEMENT, 0);
    if (this.#release && this.#keptBytes + bytes > this.#keep) {
      for (const a of arrays) this.#release(a.subarray(s.index * slab.n, (s.index + 1) * slab.n));
    } else {
      slab.kept[s.index] = bytes;
      this.#keptBytes += bytes;
    }
    if (slab.used.some((u) => u)) return;
    const list = this.#slabs.get(slab.n)!;
    if (list.filter((x) => !x.used.some((u) => u)).length < 2) return;
    list.splice(list.indexOf(slab), 1);
    for (const k of slab.kept) this.#keptBytes -= k;
  }

  /** Bytes of freed slots kept committed. */
  get keptBytes(): number {
    return this.#keptBytes;
  }

  /** Slabs held (for tests and metrics). */
  get count(): number {
    let c = 0;
    for (const l of this.#slabs.values()) c += l.length;
    return c;
  }

  clear(): void {
    this.#slabs.clear();
    this.#keptBytes = 0;
  }
}

/** A step as the batch orders it: its slot (one-row sessions) and its tokens. */
export interface SlotStep {
  readonly slot?: SlabSlot;
  readonly tokens: number;
}

/**
 * The order in which a batch stacks its steps and the runs that share one attention call:
 * decode steps (one token) of slab sessions sorted by slab and slot, neighbours in one run; every
 * other step a run of its own, after them in their given order. Returns runs of indices into
 * `steps`.
 */
export function slotRuns(steps: readonly SlotStep[]): number[][] {
  const decode: number[] = [], rest: number[] = [];
  steps.forEach((s, i) => (s.slot && s.tokens === 1 ? decode : rest).push(i));
  decode.sort((a, b) => {
    const x = steps[a].slot!, y = steps[b].slot!;
    return x.slab.id - y.slab.id || x.index - y.index;
  });
  const runs: number[][] = [];
  for (const i of decode) {
    const last = runs.at(-1), s = steps[i].slot!;
    const prev = last ? steps[last.at(-1)!].slot! : undefined;
    if (last && prev!.slab === s.slab && prev!.index + 1 === s.index) last.push(i);
    else runs.push([i]);
  }
  for (const i of rest) runs.push([i]);
  return runs;
}
