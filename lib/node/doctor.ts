/**
 * `plumise doctor`: what an operator checks before going live — the engine loads, memory and
 * disk fit the chosen span, the ports can be bound, the chain answers with the expected id and
 * the wallet has gas and a registration, the Oracle answers and the clocks agree, the checkpoint
 * is reachable or cached, the peer key is private, peers on the internet can reach the node (or it
 * serves through relays: doctor_reachability.ts). Offline mode (PLUMISE_OFFLINE) leaves out the
 * chain and the Oracle, as `serve` does.
 * @module
 */
import type { Config } from "../config/types.ts";
import { checkReachabilityForDoctor } from "./doctor_reachability.ts";
import {
  checkChain,
  checkCheckpoint,
  checkDisk,
  checkEngine,
  checkIdentity,
  checkMemory,
  checkOracle,
  checkPort,
  type DoctorCheck,
} from "./doctor_checks.ts";

export type { DoctorCheck };

export interface DoctorOptions {
  /** The agent's address, or why it could not be loaded (undefined: no wallet configured). */
  wallet?: { address: string } | { error: string; hint: string };
  /** Available memory in bytes (undefined when unknown). */
  availableMemoryBytes?: number;
  /** Cache home for the engine library (default: XDG_CACHE_HOME or the platform's). */
  cacheHome?: string;
  signal?: AbortSignal;
}

/** Runs every check that applies to `config` and returns them in a stable order. */
export async function runDoctor(config: Config, o: DoctorOptions = {}): Promise<DoctorCheck[]> {
  const checks: DoctorCheck[] = [];
  checks.push(await checkEngine(o.cacheHome, { signal: o.signal }));
  const ckpt = await checkCheckpoint(config, { signal: o.signal });
  checks.push(ckpt.check);
  checks.push(checkMemory(config, ckpt.config, o.availableMemoryBytes));
  checks.push(await checkDisk(config, ckpt.config, ckpt.cached));
  checks.push(checkPort("swarm", config.p2pHost, config.p2pPort));
  checks.push(checkPort("direct", config.p2pHost, config.directPort));
  checks.push(checkPort("api", config.apiHost, config.apiPort));
  checks.push(await checkIdentity(config.identityPath));
  checks.push(await checkReachabilityForDoctor(config, { signal: o.signal }));
  if (!config.offline) {
    const w = o.wallet;
    // without a usable wallet the chain itself is still checked (its id, whether it answers)
    const chainOnly = async () =>
      (await checkChain(config, "0x0000000000000000000000000000000000000000", { signal: o.signal })).slice(
        0,
        1,
      );
    if (!w) {
      checks.push({
        name: "wallet",
        ok: false,
        detail: "no wallet configured",
        hint:
          "set PLUMISE_KEYSTORE (create one: plumise wallet new) or PLUMISE_PRIVATE_KEY; or PLUMISE_OFFLINE=true",
      });
      checks.push(...await chainOnly());
    } else if ("error" in w) {
      checks.push({ name: "wallet", ok: false, detail: w.error, hint: w.hint });
      checks.push(...await chainOnly());
    } else {
      checks.push({ name: "wallet", ok: true, detail: `agent ${w.address}` });
      checks.push(...await checkChain(config, w.address, { signal: o.signal }));
    }
    checks.push(
      ...await checkOracle(config, w && "address" in w ? w.address : undefined, { signal: o.signal }),
    );
  }
  return checks;
}
