/**
 * Signs and verifies swarm records with the peer key. A record verifies only when its
 * signature matches the public key embedded in its own `peerId` (Ed25519 peer ids carry the
 * key), so nobody can announce for another peer.
 * @module
 */
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey, peerIdFromString } from "@libp2p/peer-id";
import { SwarmError } from "../errors.ts";
import {
  fromBase64,
  parseRecordPayload,
  recordPayload,
  recordSigningBytes,
  type SignedRecordWire,
  type SwarmRecord,
  toBase64,
} from "../wire/mod.ts";

/** Signs `record` (whose `peerId` must be the key's own). */
export async function signRecord(record: SwarmRecord, privateKey: PrivateKey): Promise<SignedRecordWire> {
  const own = peerIdFromPrivateKey(privateKey).toString();
  if (record.peerId !== own) {
    throw new SwarmError(
      "RECORD_PEER_MISMATCH",
      `cannot sign a record for ${record.peerId} with the key of ${own}`,
      {
        hint: "a node signs only its own record",
      },
    );
  }
  const payload = recordPayload(record);
  const sig = await privateKey.sign(recordSigningBytes(payload));
  return { payload, signature: toBase64(sig) };
}

/**
 * Verifies a signed record: payload schema, signature against the key in `peerId`, not
 * expired at `now`. Throws `SwarmError` `RECORD_INVALID` / `RECORD_BAD_SIGNATURE` / `RECORD_EXPIRED`.
 */
export async function verifySignedRecord(
  wire: SignedRecordWire,
  now: number = Date.now(),
): Promise<SwarmRecord> {
  let record: SwarmRecord;
  try {
    record = parseRecordPayload(wire.payload);
  } catch (err) {
    throw new SwarmError("RECORD_INVALID", `record rejected: ${(err as Error).message}`, {
      hint: "the announcing peer runs an incompatible version",
      cause: err,
    });
  }
  let ok = false;
  try {
    const pid = peerIdFromString(record.peerId);
    if (!pid.publicKey) throw new Error("peer id does not embed a public key");
    ok = await pid.publicKey.verify(recordSigningBytes(wire.payload), fromBase64(wire.signature));
  } catch (err) {
    throw new SwarmError(
      "RECORD_BAD_SIGNATURE",
      `record of ${record.peerId} cannot be verified: ${(err as Error).message}`,
      {
        hint: "records must be signed with the Ed25519 key of the peer id they name",
        cause: err,
      },
    );
  }
  if (!ok) {
    throw new SwarmError(
      "RECORD_BAD_SIGNATURE",
      `record of ${record.peerId} has a signature by another key`,
      {
        hint: "records must be signed with the Ed25519 key of the peer id they name",
      },
    );
  }
  if (record.expiresAt <= now) {
    throw new SwarmError(
      "RECORD_EXPIRED",
      `record of ${record.peerId} (seq ${record.seq}) expired at ${record.expiresAt}`,
      {
        hint: "check the announcing server's clock",
      },
    );
  }
  return record;
}
