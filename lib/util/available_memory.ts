/**
 * The memory the machine has available now, as the OS counts it (`MemAvailable`): what sizes a
 * KV cache, an auto tier and the doctor's check, and what a client head's load is compared with.
 * @module
 */

/** Available memory in bytes; undefined when it cannot be read (no `--allow-sys`, another OS). */
export function availableMemoryBytes(): number | undefined {
  try {
    return Deno.systemMemoryInfo().available;
  } catch {
    return undefined;
  }
}
