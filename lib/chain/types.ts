/**
 * What other folders see of chain/: the `Signer` the reporter signs with, the chain agent's
 * status, and the proof shape of verifyInference. No ethers types here.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";

/** Signs EIP-191 (`personal_sign`) messages for one address. */
export interface Signer {
  /** EIP-55 checksummed address. */
  readonly address: string;
  /** `0x` + 130 hex chars (r‖s‖v, v ∈ {27, 28}). */
  signMessage(message: string): Promise<string>;
}

/** One inference to attest with precompile 0x20 (all hashes 0x + 64 hex). */
export interface InferenceProof {
  readonly modelHash: string;
  readonly inputHash: string;
  readonly outputHash: string;
  readonly tokenCount: number;
}

export type ChainAgentState = "idle" | "starting" | "online" | "offline" | "stopped";

/** A snapshot of what the chain agent knows (for /health, logs and `status`). */
export interface ChainAgentStatus {
  readonly state: ChainAgentState;
  readonly address: string;
  readonly chainId: number;
  /** undefined while unknown (offline, or not checked yet). */
  readonly registered?: boolean;
  /** How registration was determined: `agent_isAgentAccount`, `agentRegistry`, `simulation`. */
  readonly registrationSource?: string;
  readonly registrationTx?: string;
  /** Why registration did not happen (revert reason), when it failed. */
  readonly registrationError?: string;
  /** Whether the RPC answers the custom `agent_*` methods (undefined: not asked yet). */
  readonly agentMethods?: boolean;
  /** Unix ms of the last successful heartbeat tx, and its hash. */
  readonly lastHeartbeatAt?: number;
  readonly lastHeartbeatTx?: string;
  readonly heartbeatFailures: number;
  readonly lastClaim?: { readonly amountWei: string; readonly txHash: string; readonly at: number };
  readonly lastError?: string;
  readonly balanceWei?: string;
  /** 0x20 attestations dropped since start because too many waited (VERIFY_ON_CHAIN). */
  readonly verifyDropped: number;
}

/** What node/ holds: the composed chain agent. */
export interface ChainAgentHandle {
  start(options?: AbortOptions): Promise<void>;
  stop(): Promise<void>;
  status(): ChainAgentStatus;
  /** Sends a 0x20 verifyInference tx when enabled (no-op otherwise); never throws. */
  verifyInference(proof: InferenceProof): Promise<void>;
}
