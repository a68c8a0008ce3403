/**
 * Gathers the chain side of `plumise status` (docs/protocol.md, "plumise status"): each source is
 * either a value or "unavailable (reason)"; nothing here throws for an unreachable or odd chain.
 * @module
 */
import { errorMessage } from "../errors.ts";
import { AgentRegistryReader } from "./agent_registry.ts";
import { checkRegistration } from "./agent_registration.ts";
import { formatPlm } from "./preflight.ts";
import { ChainProvider } from "./provider.ts";
import { RewardPool } from "./rewards.ts";

/** A value, or why it is unavailable. */
export type StatusValue<T> = { readonly ok: true; readonly value: T; readonly source?: string } | {
  readonly ok: false;
  readonly reason: string;
};

export interface ChainStatusReport {
  readonly agent: string;
  /** The RPC URL with userinfo and query tokens redacted. */
  readonly rpcUrl: string;
  readonly chainId: number;
  /** The chain answered eth_chainId with the expected id. */
  readonly online: boolean;
  readonly chainIdCheck: StatusValue<number>;
  readonly balanceWei: StatusValue<string>;
  readonly registered: StatusValue<boolean>;
  readonly active: StatusValue<boolean>;
  readonly pendingRewardWei: StatusValue<string>;
  readonly currentEpoch: StatusValue<number>;
  /** Seconds since the last heartbeat (chain time vs now). */
  readonly heartbeatAgeSeconds: StatusValue<number>;
  readonly agentRegistry: StatusValue<string>;
}

async function attempt<T>(fn: () => Promise<T>, source?: string): Promise<StatusValue<T>> {
  try {
    return { ok: true, value: await fn(), source };
  } catch (err) {
    return { ok: false, reason: errorMessage(err) };
  }
}

function parseTime(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v;
  if (typeof v === "string" && /^(0x[0-9a-fA-F]+|\d+)$/.test(v)) return Number(BigInt(v));
  return undefined;
}

export async function gatherChainStatus(options: {
  address: string;
  rpcUrl: string;
  chainId: number;
  rewardPool?: string;
  agentRegistry?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  now?: () => number;
}): Promise<ChainStatusReport> {
  const now = options.now ?? Date.now;
  const provider = new ChainProvider({
    rpcUrl: options.rpcUrl,
    chainId: options.chainId,
    timeoutMs: options.timeoutMs ?? 10_000,
  });
  const signal = options.signal;
  const down = (reason: string): StatusValue<never> => ({ ok: false, reason });
  try {
    const chainIdCheck = await attempt(async () => {
      const id = await provider.getChainId({ signal });
      if (id !== options.chainId) {
        throw new Error(`the RPC is chain ${id}, but PLUMISE_CHAIN_ID is ${options.chainId}`);
      }
      return id;
    });
    const agentRegistry: StatusValue<string> = options.agentRegistry
      ? { ok: true, value: options.agentRegistry }
      : { ok: false, reason: "not configured" };
    if (!chainIdCheck.ok) {
      const why = `chain unavailable: ${chainIdCheck.reason}`;
      return {
        agent: options.address,
        rpcUrl: provider.displayUrl,
        chainId: options.chainId,
        online: false,
        chainIdCheck,
        balanceWei: down(why),
        registered: down(why),
        active: down(why),
        pendingRewardWei: down(why),
        currentEpoch: down(why),
        heartbeatAgeSeconds: down(why),
        agentRegistry,
      };
    }
    let registry: AgentRegistryReader | undefined;
    let pool: RewardPool | undefined;
    const registryErr = options.agentRegistry
      ? await attempt(() =>
        Promise.resolve(registry = new AgentRegistryReader(provider, options.agentRegistry!))
      )
      : undefined;
    const poolErr = await attempt(() => Promise.resolve(pool = new RewardPool(provider, options.rewardPool)));

    const balanceWei = await attempt(async () =>
      (await provider.getBalance(options.address, { signal })).toString()
    );
    const reg = await attempt(() => checkRegistration(provider, options.address, { registry, signal }));
    const registered: StatusValue<boolean> = !reg.ok
      ? reg
      : reg.value.registered === undefined
      ? down("unknown: the RPC has no agent_* methods and AGENT_REGISTRY_ADDRESS is not set")
      : { ok: true, value: reg.value.registered, source: reg.value.source };

    // Heartbeat age and activity: AgentRegistry when configured, else agent_getAgentMeta.
    let heartbeatAgeSeconds: StatusValue<number> = down("unavailable");
    let active: StatusValue<boolean> = down("unavailable");
    if (registry) {
      const rec = await attempt(() => registry!.getAgent(options.address, { signal }), "agentRegistry");
      if (rec.ok) {
        heartbeatAgeSeconds = rec.value.lastHeartbeat > 0
          ? {
            ok: true,
            value: Math.max(0, Math.floor(now() / 1000) - rec.value.lastHeartbeat),
            source: "agentRegistry",
          }
          : down("no heartbeat yet");
      } else heartbeatAgeSeconds = rec;
      active = await attempt(() => registry!.isActive(options.address, { signal }), "agentRegistry");
    } else if (registryErr && !registryErr.ok) {
      active = registryErr;
    } else if (reg.ok && reg.value.agentMethods) {
      const meta = await attempt(() =>
        provider.send<Record<string, unknown> | null>("agent_getAgentMeta", [options.address, "latest"], {
          signal,
        })
      );
      if (!meta.ok) {
        heartbeatAgeSeconds = meta;
        active = meta;
      } else if (!meta.value || typeof meta.value !== "object") {
        heartbeatAgeSeconds = down("not registered");
        active = { ok: true, value: false, source: "agent_getAgentMeta" };
      } else {
        const hb = parseTime(meta.value.lastHeartbeat);
        if (hb && hb > 0) {
          const age = Math.max(0, Math.floor(now() / 1000) - hb);
          heartbeatAgeSeconds = { ok: true, value: age, source: "agent_getAgentMeta" };
          active = { ok: true, value: age <= 300, source: "agent_getAgentMeta" };
        } else {
          heartbeatAgeSeconds = down("no heartbeat yet");
          active = { ok: true, value: false, source: "agent_getAgentMeta" };
        }
      }
    } else {
      const why = "unknown: the RPC has no agent_* methods and AGENT_REGISTRY_ADDRESS is not set";
      active = down(why);
      heartbeatAgeSeconds = down(why);
    }

    const pendingRewardWei = pool
      ? await attempt(async () => (await pool!.pendingReward(options.address, { signal })).toString())
      : poolErr as StatusValue<never>;
    const currentEpoch = pool
      ? await attempt(async () => Number(await pool!.currentEpoch({ signal })))
      : poolErr as StatusValue<never>;
    return {
      agent: options.address,
      rpcUrl: provider.displayUrl,
      chainId: options.chainId,
      online: true,
      chainIdCheck,
      balanceWei,
      registered,
      active,
      pendingRewardWei,
      currentEpoch,
      heartbeatAgeSeconds,
      agentRegistry,
    };
  } finally {
    provider.destroy();
  }
}

const bool = (b: boolean) => (b ? "True" : "False");

/**
 * The lines of docs/protocol.md's "plumise status" (same labels as the old node), plus heartbeat age
 * and AgentRegistry.
 */
export function formatChainStatus(r: ChainStatusReport): string[] {
  // with the chain down every value has the same reason: said once, on the Online line
  const down = r.chainIdCheck.ok ? undefined : `chain unavailable: ${r.chainIdCheck.reason}`;
  const show = <T>(v: StatusValue<T>, fmt: (x: T) => string) =>
    v.ok ? fmt(v.value) : v.reason === down ? "unavailable (chain down)" : `unavailable (${v.reason})`;
  return [
    `Agent:   ${r.agent}`,
    `Chain:   ${r.rpcUrl} (ID ${r.chainId})`,
    `Online:  ${bool(r.online)}${r.chainIdCheck.ok ? "" : ` (${r.chainIdCheck.reason})`}`,
    `Balance: ${show(r.balanceWei, (w) => formatPlm(BigInt(w)))}`,
    `Registered: ${show(r.registered, bool)}`,
    `Active:     ${show(r.active, bool)}`,
    `Pending Reward: ${show(r.pendingRewardWei, (w) => formatPlm(BigInt(w)))}`,
    `Current Epoch:  ${show(r.currentEpoch, String)}`,
    `Heartbeat:      ${show(r.heartbeatAgeSeconds, (s) => `${s} s ago`)}`,
    `AgentRegistry:  ${show(r.agentRegistry, String)}`,
  ];
}
