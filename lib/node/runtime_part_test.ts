import assert from "node:assert/strict";
import { ASSUMED_NETWORK_BITS_PER_SECOND, pinnedKey, throughputFigures } from "./runtime_part.ts";

Deno.test("throughput figures: per-block rates, network estimate from the hidden size, throughput capped by it", () => {
  const f = throughputFigures({
    spanBlocks: 4,
    hiddenSize: 1024,
    decodeStepsPerSecond: 50,
    prefillTokensPerSecond: 2000,
  });
  assert.equal(f.inferenceRps, 200);
  assert.equal(f.forwardRps, 8000);
  assert.equal(f.networkRps, Math.round((ASSUMED_NETWORK_BITS_PER_SECOND / (1024 * 16)) * 100) / 100);
  assert.equal(f.throughput, 50, "compute-bound: the decode rate");
  const slowLink = throughputFigures({
    spanBlocks: 4,
    hiddenSize: 8192,
    decodeStepsPerSecond: 500,
    prefillTokensPerSecond: 2000,
    networkBitsPerSecond: 1e6,
  });
  assert.equal(slowLink.networkRps, 7.63);
  assert.equal(slowLink.throughput, 7.63, "network-bound: the link rate");
});

Deno.test("the throughput cache's key part for pinning: where the threads run, in the runtime's order, or unpinned", () => {
  assert.equal(pinnedKey([1, 0]), "pinned 1,0");
  assert.equal(pinnedKey([3]), "pinned 3");
  assert.equal(pinnedKey(undefined), "unpinned");
  assert.equal(pinnedKey([]), "unpinned");
});
