/** Test helpers: signed records for fresh identities. @module */
import type { PrivateKey } from "@libp2p/interface";
import type { SwarmRecord } from "../wire/mod.ts";
import { ephemeralIdentity } from "../swarm/peer_identity.ts";
import { signRecord } from "../swarm/record_signer.ts";

export interface TestPeer {
  peerId: string;
  privateKey: PrivateKey;
  record: (patch?: Partial<SwarmRecord>) => SwarmRecord;
  sign: (patch?: Partial<SwarmRecord>) => ReturnType<typeof signRecord>;
}

/** A valid record of `peerId` (online, span 0..4, expiring a minute after `now`), with `patch` applied. */
export function testRecord(peerId: string, now: number, patch: Partial<SwarmRecord> = {}): SwarmRecord {
  return {
    peerId,
    addrs: ["/ip4/127.0.0.1/tcp/1"],
    model: "test/model",
    start: 0,
    end: 4,
    state: "online",
    throughput: 10,
    inferenceRps: 100,
    forwardRps: 1000,
    networkRps: 500,
    cacheTokensLeft: 1000,
    weights: "fp32",
    version: "0.1.0",
    wallet: null,
    usingRelay: false,
    nextPings: {},
    seq: 1,
    expiresAt: now + 60_000,
    ...patch,
  };
}

export async function testPeer(now = Date.now()): Promise<TestPeer> {
  const id = await ephemeralIdentity();
  const record = (patch: Partial<SwarmRecord> = {}): SwarmRecord => testRecord(id.peerId, now, patch);
  return {
    peerId: id.peerId,
    privateKey: id.privateKey,
    record,
    sign: (patch) => signRecord(record(patch), id.privateKey),
  };
}
