/**
 * Sessions of lib/swarm/client's SwarmInferenceSession over a FakeSwarm of 9 blocks, for the
 * session's tests: fixed steps (a 5-token prefill, then six single tokens), the outputs of the
 * whole model in one process, and three servers of three blocks each.
 * @module
 */
import { fakeHidden, FakeSwarm } from "../../lib/testing/mod.ts";
import {
  SwarmInferenceSession,
  type SwarmInferenceSessionOptions,
} from "../../lib/swarm/client/swarm_inference_session.ts";
import type { Hidden } from "../../lib/swarm/client/types.ts";

export const H = 16;
export const NB = 9;

/** A prefill of 5 tokens then 6 single-token steps (inputs fixed by seeds). */
export const STEPS: Hidden[] = [
  fakeHidden(1, 5, H, 11),
  ...Array.from({ length: 6 }, (_, i) => fakeHidden(1, 1, H, 100 + i)),
];

export async function referenceOutputs(swarm: FakeSwarm, steps = STEPS): Promise<Float32Array[]> {
  const ref = await swarm.reference();
  const s = await ref.openSession({ start: 0, end: NB, maxLength: 64, batch: 1 });
  const out: Float32Array[] = [];
  for (const x of steps) out.push((await s.step(x)).data.slice());
  await ref.stop();
  return out;
}

export function session(
  swarm: FakeSwarm,
  extra: Partial<SwarmInferenceSessionOptions> = {},
): SwarmInferenceSession {
  return new SwarmInferenceSession({
    model: swarm.model,
    start: 0,
    end: NB,
    maxLength: 64,
    table: swarm,
    transport: swarm,
    retryBackoff: { initialMs: 1, maxMs: 5 },
    ...extra,
  });
}

export async function run(s: SwarmInferenceSession, steps = STEPS): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const x of steps) out.push((await s.step(x)).data.slice());
  return out;
}

export async function threeSpans(): Promise<FakeSwarm> {
  const swarm = new FakeSwarm({ numBlocks: NB, hiddenSize: H });
  await swarm.addServer("A", 0, 3);
  await swarm.addServer("B", 3, 6);
  await swarm.addServer("C", 6, 9);
  return swarm;
}
