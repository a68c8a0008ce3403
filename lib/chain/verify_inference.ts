/**
 * Optional on-chain attestation through precompile 0x20:
 * `abi.encode(bytes32 modelHash, bytes32 inputHash, bytes32 outputHash, address agent, uint256 tokenCount)`.
 * @module
 */
import { AbiCoder, isAddress } from "ethers";
import { ConfigError } from "../errors.ts";
import type { InferenceProof } from "./types.ts";

export const VERIFY_INFERENCE_ADDRESS = "0x0000000000000000000000000000000000000020";
export const VERIFY_GAS = 200_000n;
const HASH = /^0x[0-9a-fA-F]{64}$/;

/** The 160-byte calldata of 0x20. */
export function encodeVerifyInference(proof: InferenceProof, agent: string): string {
  for (const k of ["modelHash", "inputHash", "outputHash"] as const) {
    if (!HASH.test(proof[k])) {
      throw new ConfigError("PROOF_INVALID", `${k} ${JSON.stringify(proof[k])} is not 0x + 64 hex`, {
        hint: "hashes are keccak256 digests (32 bytes)",
      });
    }
  }
  if (!Number.isSafeInteger(proof.tokenCount) || proof.tokenCount < 1) {
    throw new ConfigError("PROOF_INVALID", `tokenCount ${proof.tokenCount} is not an integer ≥ 1`, {
      hint: "count the generated tokens",
    });
  }
  if (!isAddress(agent)) throw new ConfigError("PROOF_INVALID", `agent ${agent} is not an address`);
  return AbiCoder.defaultAbiCoder().encode(
    ["bytes32", "bytes32", "bytes32", "address", "uint256"],
    [proof.modelHash, proof.inputHash, proof.outputHash, agent, proof.tokenCount],
  );
}
