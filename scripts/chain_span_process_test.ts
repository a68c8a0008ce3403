import assert from "node:assert/strict";
import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";
import { checkSpanDriver } from "../tests/helpers/span_driver_check.ts";
import { spawnChain } from "./chain_span_process.ts";

Deno.test("chain span processes: two spans pushing to each other equal the runtime's whole range, fresh steps reset", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 3 });
  const chain = await spawnChain({ model: ck.dir, cuts: [0, 1, 3], threads: 1 });
  try {
    await checkSpanDriver(
      ck.dir,
      { start: 0, end: 3 },
      Number(ck.config.hidden_size),
      (x, fresh) => chain.step(x, fresh),
    );
  } finally {
    await chain.stop();
    await Deno.remove(ck.dir, { recursive: true });
  }
});

Deno.test("chain span processes: fewer than one span is refused", async () => {
  await assert.rejects(
    () => spawnChain({ model: "/nonexistent", cuts: [0], threads: 1 }),
    /at least one span/,
  );
});
