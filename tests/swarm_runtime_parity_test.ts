/**
 * Inference through one real server (issue 5): a tiny random BLOOM checkpoint loaded by the
 * real runtime (OnnxBlockRuntime), served by a SwarmServer over libp2p on 127.0.0.1. A prefill
 * plus decode steps over the wire equal running the same blocks locally:
 * - f32 on the wire: bit-exact;
 * - f16 on the wire: bit-exact against the local run on f16-rounded inputs with the output
 *   rounded to f16 (the wire is the only difference), and within F16_TOL (max |Δ| relative to
 *   the largest |value|) of the pure f32 local run.
 * Also the forward protocol (no cache) against the runtime's forward.
 */
import assert from "node:assert/strict";
import { createBlockRuntime } from "../lib/runtime/onnx_block_runtime.ts";
import { fakeHidden } from "../lib/testing/mod.ts";
import type { BlockRuntime, HiddenStates } from "../lib/runtime/types.ts";
import { ephemeralIdentity } from "../lib/swarm/peer_identity.ts";
import { SwarmPeer } from "../lib/swarm/swarm_peer.ts";
import { SwarmServer } from "../lib/swarm/swarm_server.ts";
import { Metrics } from "../lib/util/metrics.ts";
import { roundToF16 } from "../lib/wire/mod.ts";
import { makeBloomCheckpoint } from "./helpers/checkpoint_fixture.ts";

/** f16 on the wire vs a pure f32 local run: max |Δ| / max |ref| (f16 has 11 significant bits: 4.9e-4). */
const F16_TOL = 2e-3;
const MODEL = "tiny/bloom";

function relErr(a: Float32Array, ref: Float32Array): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - ref[i]));
    m = Math.max(m, Math.abs(ref[i]));
  }
  return d / Math.max(m, 1e-6);
}

function scaled(h: HiddenStates, k: number): HiddenStates {
  return { data: h.data.map((v) => v * k), shape: h.shape };
}

Deno.test({
  name:
    "swarm parity: real runtime behind a libp2p server equals local blocks (f32 exact, f16 within tolerance)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const ck = await makeBloomCheckpoint({ numLayers: 4, seed: 7 });
    const H = ck.config.hidden_size as number;
    const opts = {
      model: ck.dir,
      start: 1,
      end: 4,
      weights: "fp32",
      cacheTokens: 100_000,
      maxLength: 64,
    } as const;
    // the server's runtime, and a second one for the local reference run
    const rt: BlockRuntime = createBlockRuntime(opts);
    const localRt: BlockRuntime = createBlockRuntime(opts);
    await Promise.all([rt.start(), localRt.start()]);
    const server = new SwarmServer({
      privateKey: (await ephemeralIdentity()).privateKey,
      host: "127.0.0.1",
      port: 0,
      model: MODEL,
      weights: "fp32",
      version: "test",
      metrics: new Metrics(),
      dht: false,
    });
    const peer = new SwarmPeer({
      privateKey: (await ephemeralIdentity()).privateKey,
      noListen: true,
      dht: false,
    });
    try {
      await server.start();
      await server.serve(rt, { throughput: 1, inferenceRps: 1, forwardRps: 1, networkRps: 1 });
      await peer.start();
      const client = peer.client(server.peer.multiaddrs()[0]);
      const info = await client.info();
      assert.equal(info.live.sessions, 0);

      // inputs: a 6-token prefill then 4 decode steps, batch 2, ~unit scale
      const inputs = [fakeHidden(2, 6, H, 1), ...[2, 3, 4, 5].map((s) => fakeHidden(2, 1, H, s))].map((x) =>
        scaled(x, 2)
      );
      const runLocal = async (xs: HiddenStates[]) => {
        const s = await localRt.openSession({ start: 1, end: 4, maxLength: 16, batch: 2 });
        const outs: Float32Array[] = [];
        for (const x of xs) outs.push((await s.step(x)).data);
        await s.close();
        return outs;
      };
      const runRemote = async (dtype: "f32" | "f16", sessionId: string) => {
        const s = await client.openInference({
          sessionId,
          model: MODEL,
          start: 1,
          end: 4,
          maxLength: 16,
          batch: 2,
          dtype,
        });
        const outs: Float32Array[] = [];
        for (const x of inputs) {
          const r = await s.step(x);
          assert.deepEqual(r.hidden.shape, x.shape);
          outs.push(r.hidden.data);
        }
        await s.close();
        return outs;
      };

      const local = await runLocal(inputs);
      const f32 = await runRemote("f32", "parity-f32");
      for (let i = 0; i < inputs.length; i++) {
        assert.deepEqual(f32[i], local[i], `f32 step ${i} differs`);
      }

      const f16 = await runRemote("f16", "parity-f16");
      const localOnRounded = await runLocal(
        inputs.map((x) => ({ data: roundToF16(x.data), shape: x.shape })),
      );
      const errs: number[] = [];
      for (let i = 0; i < inputs.length; i++) {
        assert.deepEqual(
          f16[i],
          roundToF16(localOnRounded[i]),
          `f16 step ${i}: the wire is not the only difference`,
        );
        errs.push(relErr(f16[i], local[i]));
      }
      console.log(
        `f16 wire vs f32 local, max |Δ|/max |ref| per step: ${
          errs.map((e) => e.toExponential(2)).join(", ")
        }`,
      );
      for (const e of errs) assert.ok(e > 0 && e <= F16_TOL, `f16 error ${e} (tolerance ${F16_TOL})`);

      // forward protocol (no cache): equals the runtime's forward
      const x = scaled(fakeHidden(1, 5, H, 9), 2);
      const fwd = await client.forward({ model: MODEL, start: 2, end: 4, hidden: x });
      assert.deepEqual(fwd.hidden.data, (await localRt.forward(2, 4, x)).data);

      assert.equal((await client.info()).live.sessions, 0, "sessions freed");
    } finally {
      await peer.stop();
      await server.stop();
      await rt.stop();
      await localRt.stop();
      await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
    }
  },
});
