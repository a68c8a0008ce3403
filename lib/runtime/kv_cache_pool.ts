/**
 * Cache buffers of closed sessions kept for the next sessions (kv_engine.ts). A reused buffer's
 * stale rows are never read: a step reads only rows that it or an earlier step of the same session
 * wrote.
 * @module
 */

/** A K or V cache buffer: float32, or float16 bits. */
export type CacheArray = Float32Array | Uint16Array;

export class CachePool {
  readonly #free = new Map<number, CacheArray[]>();
  #bytes = 0;

  /** Keeps up to `maxBytes` of buffers; `make(n)` allocates a new buffer of n elements. */
  constructor(readonly maxBytes: number, readonly make: (n: number) => CacheArray) {}

  /** A buffer of `n` elements: a kept one, else a new one. */
  take(n: number): CacheArray {
    const a = this.#free.get(n)?.pop();
    if (!a) return this.make(n);
    this.#bytes -= a.byteLength;
    return a;
  }

  /** Keeps `a` for a later `take` while the pool holds under `maxBytes` (else the GC has it). */
  give(a: CacheArray): void {
    if (this.#bytes + a.byteLength > this.maxBytes) return;
    const list = this.#free.get(a.length);
    if (list) list.push(a);
    else this.#free.set(a.length, [a]);
    this.#bytes += a.byteLength;
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  clear(): void {
    this.#free.clear();
    this.#bytes = 0;
  }
}
