import assert from "node:assert/strict";
import { availableMemoryBytes } from "./available_memory.ts";

Deno.test("availableMemoryBytes: the system's figure, a positive integer of bytes (tests run with --allow-sys)", () => {
  const n = availableMemoryBytes();
  assert.ok(n !== undefined && Number.isSafeInteger(n) && n > 0, String(n));
  assert.equal(n, Deno.systemMemoryInfo().available, "the same figure, read again");
});
