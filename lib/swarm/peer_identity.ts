/**
 * The node's persisted Ed25519 peer key: created on first start (file mode 0600), loaded
 * afterwards, so the peer id survives restarts.
 * @module
 */
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { dirname } from "node:path";
import { SwarmError } from "../errors.ts";
import type { Logger } from "../util/logger.ts";
import { silentLogger } from "../util/logger.ts";
import { createFileAtomic } from "../util/write_text_atomic.ts";

export interface PeerIdentity {
  readonly privateKey: PrivateKey;
  /** base58 peer id. */
  readonly peerId: string;
  /** True when the key was created by this call. */
  readonly created: boolean;
}

/** A fresh in-memory Ed25519 identity (tests, the `swarm` observer). */
export async function ephemeralIdentity(): Promise<PeerIdentity> {
  const privateKey = await generateKeyPair("Ed25519");
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: true };
}

/** Loads the identity at `path`, creating it (0600) when absent. */
export async function loadOrCreateIdentity(
  path: string,
  logger: Logger = silentLogger,
): Promise<PeerIdentity> {
  let bytes: Uint8Array | undefined;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new SwarmError(
        "IDENTITY_UNREADABLE",
        `cannot read the peer identity at ${path}: ${(err as Error).message}`,
        {
          hint: "fix the file's permissions or point PETALS_IDENTITY_PATH elsewhere",
          cause: err,
        },
      );
    }
  }
  if (bytes) {
    try {
      const privateKey = privateKeyFromProtobuf(bytes);
      if (privateKey.type !== "Ed25519") throw new Error(`key type ${privateKey.type}`);
      try {
        const mode = (await Deno.stat(path)).mode;
        if (mode !== null && (mode & 0o077) !== 0) {
          logger.warn("peer identity file is readable by others; chmod 600 it", {
            path,
            mode: mode.toString(8),
          });
        }
      } catch { /* stat is best effort */ }
      return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString(), created: false };
    } catch (err) {
      throw new SwarmError("IDENTITY_INVALID", `the peer identity at ${path} is not an Ed25519 libp2p key`, {
        hint: "delete the file to create a new identity (the peer id will change)",
        cause: err,
      });
    }
  }
  const privateKey = await generateKeyPair("Ed25519");
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    await createFileAtomic(path, privateKeyToProtobuf(privateKey), { mode: 0o600 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return await loadOrCreateIdentity(path, logger);
    throw new SwarmError(
      "IDENTITY_UNWRITABLE",
      `cannot create the peer identity at ${path}: ${(err as Error).message}`,
      {
        hint: "make the data directory writable or point PETALS_IDENTITY_PATH elsewhere",
        cause: err,
      },
    );
  }
  const peerId = peerIdFromPrivateKey(privateKey).toString();
  logger.info("created a new peer identity", { path, peerId });
  return { privateKey, peerId, created: true };
}
