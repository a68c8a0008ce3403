/**
 * Registration through precompile 0x21, idempotent: ask `agent_isAgentAccount` first (or the
 * AgentRegistry, or a simulation on a plain EVM) and send the 300 000-gas tx only when needed.
 * @module
 */
import { getAddress, keccak256, toUtf8Bytes } from "ethers";
import { ChainError, ConfigError } from "../errors.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import type { AgentRegistryReader } from "./agent_registry.ts";
import type { ChainProvider } from "./provider.ts";
import type { TxQueue } from "./tx_queue.ts";

export const AGENT_REGISTER_ADDRESS = "0x0000000000000000000000000000000000000021";
export const REGISTER_GAS = 300_000n;
export const DEFAULT_CAPABILITIES: readonly string[] = ["text-generation"];

/** `keccak256(utf8(model id))`, e.g. of `bigscience/bloom-560m` (never zeros). */
export function modelHash(modelId: string): string {
  if (modelId.length === 0) {
    throw new ConfigError("MODEL_ID_EMPTY", "model id is empty", {
      hint: "set MODEL_NAME, e.g. bigscience/bloom-560m",
    });
  }
  return keccak256(toUtf8Bytes(modelId));
}

/** `<last path segment of the model id, ≤ 16 chars>-<last 8 chars of the EIP-55 address>`. */
export function agentName(modelId: string, address: string): string {
  const segment = modelId.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || "model";
  const short = [...segment].slice(0, 16).join("");
  return `${short}-${getAddress(address).slice(-8)}`;
}

/** UTF-8 bytes right-padded with 0x00 to 32 bytes; more than 32 bytes is an error. */
export function bytes32Utf8(text: string, what = "value"): string {
  const bytes = toUtf8Bytes(text);
  if (bytes.length > 32) {
    throw new ConfigError(
      "BYTES32_TOO_LONG",
      `${what} ${JSON.stringify(text)} is ${bytes.length} bytes, more than 32`,
      {
        hint: "use a shorter value",
      },
    );
  }
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("").padEnd(64, "0");
}

/** Calldata of 0x21: `name[32] ‖ modelHash[32] ‖ uint256 capCount ‖ capCount × 32-byte capabilities`. */
export function encodeRegistration(
  input: { name: string; modelHash: string; capabilities?: readonly string[] },
): string {
  if (!/^0x[0-9a-fA-F]{64}$/.test(input.modelHash)) {
    throw new ConfigError("MODEL_HASH_INVALID", `modelHash ${input.modelHash} is not 32 bytes of hex`, {
      hint: "use modelHash(modelId)",
    });
  }
  const caps = input.capabilities ?? DEFAULT_CAPABILITIES;
  return "0x" + bytes32Utf8(input.name, "agent name") + input.modelHash.slice(2).toLowerCase() +
    caps.length.toString(16).padStart(64, "0") + caps.map((c) => bytes32Utf8(c, "capability")).join("");
}

export interface RegistrationCheck {
  /** undefined: unknown (plain EVM without agent_* and no AgentRegistry). */
  readonly registered: boolean | undefined;
  readonly source: "agent_isAgentAccount" | "agentRegistry" | "none";
  /** Whether the RPC answers `agent_*`. */
  readonly agentMethods: boolean;
}

/** Asks the chain whether `address` is a registered agent. */
export async function checkRegistration(
  provider: ChainProvider,
  address: string,
  options: { registry?: AgentRegistryReader; signal?: AbortSignal } = {},
): Promise<RegistrationCheck> {
  try {
    const r = await provider.send("agent_isAgentAccount", [address, "latest"], { signal: options.signal });
    if (typeof r !== "boolean") {
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `agent_isAgentAccount returned ${JSON.stringify(r)?.slice(0, 80)}, not a bool`,
        {
          hint: "check PLUMISE_RPC_URL points at a Plumise node",
        },
      );
    }
    return { registered: r, source: "agent_isAgentAccount", agentMethods: true };
  } catch (err) {
    if (!(err instanceof ChainError && err.code === "CHAIN_METHOD_NOT_FOUND")) throw err;
  }
  if (options.registry) {
    return {
      registered: await options.registry.isRegistered(address, { signal: options.signal }),
      source: "agentRegistry",
      agentMethods: false,
    };
  }
  return { registered: undefined, source: "none", agentMethods: false };
}

export interface EnsureRegisteredOptions {
  provider: ChainProvider;
  queue: TxQueue;
  modelId: string;
  capabilities?: readonly string[];
  registry?: AgentRegistryReader;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface RegistrationResult {
  readonly status: "already" | "registered";
  readonly source: "agent_isAgentAccount" | "agentRegistry" | "simulation" | "transaction";
  readonly agentMethods: boolean;
  readonly txHash?: string;
  readonly name: string;
  readonly modelHash: string;
}

/**
 * Registers the queue's wallet unless it already is. A revert throws ChainError
 * (`TX_WOULD_REVERT`/`TX_REVERTED`) with the reason; the caller must not retry it in a loop.
 */
export async function ensureRegistered(options: EnsureRegisteredOptions): Promise<RegistrationResult> {
  const logger = options.logger ?? silentLogger;
  const address = options.queue.address;
  const name = agentName(options.modelId, address);
  const hash = modelHash(options.modelId);
  const check = await checkRegistration(options.provider, address, options);
  if (check.registered === true) {
    logger.info("agent already registered on chain", { address, source: check.source });
    return {
      status: "already",
      source: check.source as RegistrationResult["source"],
      agentMethods: check.agentMethods,
      name,
      modelHash: hash,
    };
  }
  if (check.registered === undefined) {
    logger.warn(
      "the RPC has no agent_* methods and no AGENT_REGISTRY_ADDRESS is set: registration state unknown; simulating 0x21 first",
      {
        rpcUrl: options.provider.displayUrl,
      },
    );
  }
  const data = encodeRegistration({ name, modelHash: hash, capabilities: options.capabilities });
  try {
    const r = await options.queue.send({
      to: AGENT_REGISTER_ADDRESS,
      data,
      gasLimit: REGISTER_GAS,
      label: "register",
    }, { signal: options.signal });
    logger.info("agent registered on chain", { address, name, modelHash: hash, tx: r.hash });
    return {
      status: "registered",
      source: "transaction",
      agentMethods: check.agentMethods,
      txHash: r.hash,
      name,
      modelHash: hash,
    };
  } catch (err) {
    if (
      err instanceof ChainError && err.code === "TX_WOULD_REVERT" &&
      /already|registered|exists/i.test(String(err.details.reason))
    ) {
      // Unknown state (plain EVM), or not registered at `latest` while the simulation on the
      // pending state says so: a registration is waiting to be mined (e.g. sent before a restart).
      logger.info(
        check.registered === undefined
          ? "agent already registered (the 0x21 simulation says so)"
          : "a registration of this agent is pending (the 0x21 simulation on the pending state says so)",
        { address, reason: err.details.reason },
      );
      return { status: "already", source: "simulation", agentMethods: false, name, modelHash: hash };
    }
    throw err;
  }
}
