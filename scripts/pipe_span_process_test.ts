import { makeBloomCheckpoint } from "../tests/helpers/checkpoint_fixture.ts";
import { checkSpanDriver } from "../tests/helpers/span_driver_check.ts";
import { spawnPipeSpan } from "./pipe_span_process.ts";

Deno.test("pipe span process: prefill and decode steps equal the runtime's, and a fresh step starts a new session", async () => {
  const ck = await makeBloomCheckpoint({ numLayers: 3 });
  const pipe = await spawnPipeSpan({ model: ck.dir, start: 1, end: 3, threads: 1 });
  try {
    await checkSpanDriver(
      ck.dir,
      { start: 1, end: 3 },
      Number(ck.config.hidden_size),
      (x, fresh) => pipe.step(x, fresh),
    );
  } finally {
    await pipe.stop();
    await Deno.remove(ck.dir, { recursive: true });
  }
});
