/**
 * Reads of the optional AgentRegistry contract (`AGENT_REGISTRY_ADDRESS`), with the correct
 * getAgent ABI, decoded defensively.
 * @module
 */
import type { AbortOptions } from "../util/abort.ts";
import { getAddress, Interface, isAddress } from "ethers";
import abi from "../../contracts/abi/AgentRegistry.json" with { type: "json" };
import { ChainError, ConfigError } from "../errors.ts";
import type { ChainProvider } from "./provider.ts";

const iface = new Interface(abi);
const STATUS = ["active", "inactive", "slashed"] as const;

export interface AgentRecord {
  readonly wallet: string;
  readonly nodeId: string;
  readonly metadata: string;
  readonly registeredAt: number;
  readonly lastHeartbeat: number;
  readonly status: "active" | "inactive" | "slashed" | "unknown";
  readonly stakeWei: bigint;
}

export class AgentRegistryReader {
  readonly address: string;
  readonly #provider: ChainProvider;

  constructor(provider: ChainProvider, address: string) {
    if (!isAddress(address)) {
      throw new ConfigError(
        "AGENT_REGISTRY_INVALID",
        `AGENT_REGISTRY_ADDRESS ${JSON.stringify(address)} is not an address`,
        {
          hint: "set it to a 0x-prefixed 20-byte address, or leave it empty",
        },
      );
    }
    this.address = getAddress(address);
    this.#provider = provider;
  }

  async #call(fn: string, args: unknown[], { signal }: AbortOptions = {}) {
    const out = await this.#provider.call({ to: this.address, data: iface.encodeFunctionData(fn, args) }, {
      signal,
    });
    try {
      return iface.decodeFunctionResult(fn, out);
    } catch (err) {
      throw new ChainError(
        "CHAIN_BAD_RESPONSE",
        `AgentRegistry.${fn} at ${this.address} returned undecodable data (${out.slice(0, 42)})`,
        {
          hint: "check AGENT_REGISTRY_ADDRESS points at the AgentRegistry contract",
          cause: err,
        },
      );
    }
  }

  async isRegistered(agent: string, { signal }: AbortOptions = {}): Promise<boolean> {
    return Boolean((await this.#call("isRegistered", [agent], { signal }))[0]);
  }

  async isActive(agent: string, { signal }: AbortOptions = {}): Promise<boolean> {
    return Boolean((await this.#call("isActive", [agent], { signal }))[0]);
  }

  async getAgent(agent: string, { signal }: AbortOptions = {}): Promise<AgentRecord> {
    const r = await this.#call("getAgent", [agent], { signal });
    const status = Number(r[5]);
    return {
      wallet: String(r[0]),
      nodeId: String(r[1]),
      metadata: String(r[2]),
      registeredAt: Number(r[3]),
      lastHeartbeat: Number(r[4]),
      status: STATUS[status] ?? "unknown",
      stakeWei: BigInt(r[6]),
    };
  }
}
