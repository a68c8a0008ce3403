import assert from "node:assert/strict";
import { UnavailableError } from "../errors.ts";
import { FakeGenerator } from "../testing/mod.ts";
import { silentLogger } from "../util/logger.ts";
import { nodeGenerator } from "./node_generator.ts";
import type { NodeParts } from "./types.ts";

const PARAMS = {
  maxNewTokens: 8,
  temperature: 0,
  topP: 1,
  repetitionPenalty: 1,
  doSample: false,
};

function setup() {
  let parts: NodeParts | undefined;
  let online = false;
  const proofs: unknown[] = [];
  const recorded: [string, string, number][] = [];
  const gen = new FakeGenerator({ script: [" a", " b"] });
  const g = nodeGenerator({ model: "m/x", parts: () => parts, online: () => online, logger: silentLogger });
  const ready = () => {
    parts = {
      generator: gen,
      chain: {
        recordInference: (p: string, t: string, n: number) => (recorded.push([p, t, n]), { proof: n }),
      },
      reporter: { addProof: (p: unknown) => proofs.push(p) },
    } as unknown as NodeParts;
    online = true;
  };
  return { g, ready, proofs, recorded };
}

async function drain(it: AsyncIterable<{ text: string }>): Promise<string> {
  let s = "";
  for await (const t of it) s += t.text;
  return s;
}

Deno.test("node generator: not ready before the parts; LOADING on a generation; prepare waits for nothing", async () => {
  const { g } = setup();
  assert.deepEqual(g.info(), { model: "m/x", ready: false });
  await g.prepare!({ signal: new AbortController().signal });
  assert.throws(() => g.countTokens("a b"), UnavailableError);
  assert.throws(() => g.generate("hi", PARAMS, { signal: new AbortController().signal }), UnavailableError);
});

Deno.test("node generator: once online, generations pass through and a completed one is recorded once", async () => {
  const { g, ready, proofs, recorded } = setup();
  ready();
  assert.equal(g.info().ready, true);
  assert.equal(await drain(g.generate("hi", PARAMS, { signal: new AbortController().signal })), " a b");
  assert.deepEqual(recorded, [["hi", " a b", 2]]);
  assert.deepEqual(proofs, [{ proof: 2 }]);
  const ac = new AbortController();
  const it = g.generate("again", PARAMS, { signal: ac.signal })[Symbol.asyncIterator]();
  await it.next();
  ac.abort();
  await it.return?.(undefined);
  assert.equal(recorded.length, 1, "an aborted generation is not recorded");
});
