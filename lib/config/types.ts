/**
 * The resolved, validated, frozen configuration of a plumise node.
 * Produced only by `resolveConfig` (config/resolve_config.ts); nothing outside config/ reads the environment.
 * @module
 */

import type { CpuPinning } from "../util/cpu_list.ts";
export type TierName = "lite" | "standard" | "pro" | "ultra" | "network";
export type WeightFormat = "fp32" | "int8";
export type LogLevelName = "debug" | "info" | "warn" | "error";
/** Where a configuration value came from. */
export type ConfigSource = "flag" | "env" | ".env" | "tier" | "default" | "auto";

export interface Config {
  /** 0x-prefixed 32-byte hex key; redacted everywhere. Undefined when not given. */
  readonly privateKey?: string;
  /** Encrypted JSON keystore path (alternative to privateKey). */
  readonly keystore?: string;
  /** Keystore password; redacted everywhere. */
  readonly keystorePassword?: string;
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly oracleUrl: string;
  /** Seconds between Oracle reports, 10..300. */
  readonly reportInterval: number;
  /** Seconds between heartbeats (0x22), default 300. */
  readonly heartbeatInterval: number;
  /** Hub repo id or local directory. */
  readonly model: string;
  /** Hub revision (branch, tag or commit), default "main". */
  readonly revision: string;
  readonly numBlocks: number;
  /** Pinned span `[start, end)` from `--block-indices a:b`. */
  readonly blockIndices?: { readonly start: number; readonly end: number };
  readonly weights: WeightFormat;
  readonly tier?: TierName;
  readonly agentRegistry?: string;
  readonly rewardPool: string;
  readonly claimThresholdWei: bigint;
  readonly maxGasPriceWei: bigint;
  readonly verifyOnChain: boolean;
  readonly apiHost: string;
  readonly apiPort: number;
  /** Generations the HTTP API runs at once (more get 429). */
  readonly apiMaxConcurrent: number;
  /** Seconds an HTTP API generation may run before it is stopped (504). */
  readonly apiTimeout: number;
  /** Seconds in-flight work gets to finish after SIGINT/SIGTERM. */
  readonly shutdownGrace: number;
  /** Bearer token required by the HTTP API when set; redacted everywhere. */
  readonly apiSecret?: string;
  /** Web origins whose pages may call the HTTP API (CORS); requests with any other `Origin` get 403. */
  readonly apiCorsOrigins: readonly string[];
  /** Public URL of the HTTP API, registered with the Oracle when set. */
  readonly publicUrl?: string;
  readonly p2pHost: string;
  readonly p2pPort: number;
  /** Direct-path port for inference steps (0: any free port, -1: off). */
  readonly directPort: number;
  readonly initialPeers: readonly string[];
  readonly announceIp?: string;
  /** Relaying for peers behind NAT: auto (while reachable from the internet), on, off. */
  readonly relayService: "auto" | "on" | "off";
  /** As a relay: slots, circuits at once, MiB and seconds per circuit. */
  readonly relayMaxReservations: number;
  readonly relayMaxCircuits: number;
  readonly relayCircuitMib: number;
  readonly relayCircuitSeconds: number;
  /** Behind NAT: relays to hold a slot on (0: none). */
  readonly relayReservations: number;
  /** Punch holes for sessions that run through a relay. */
  readonly holePunch: boolean;
  /** Ask the router for a port forward (UPnP / NAT-PMP). */
  readonly upnp: boolean;
  /** Which addresses count as the internet for reachability and hole punching. */
  readonly natScope: "public" | "private";
  /** The gateway's agent relay (ws:// or wss://), when set. */
  readonly gatewayRelayUrl?: string;
  readonly identityPath: string;
  /** Compute device: "auto" and "cpu" both run on the CPU ("cuda" is refused until an engine uses a GPU). */
  readonly device: "auto" | "cpu";
  /** Data directory (identity, throughput cache, keystore default). */
  readonly dataDir: string;
  /** Hugging Face: endpoint, token (redacted), cache home. */
  readonly hfEndpoint: string;
  readonly hfToken?: string;
  readonly hfHome: string;
  /** KV cache budget in tokens (batch × length × blocks); 0 = derive from memory. */
  readonly cacheTokens: number;
  /** Inference sessions the swarm server keeps open at once. */
  readonly maxSessions: number;
  /** Seconds without a step after which a swarm session is closed. */
  readonly sessionIdleTimeout: number;
  /** Swarm forward requests computed at once (lib/swarm/forward_gate.ts). */
  readonly forwardMaxConcurrent: number;
  /** Swarm forward requests waiting for a slot; more are refused (BUSY). */
  readonly forwardMaxQueued: number;
  /** onnxruntime intra-op threads. */
  readonly threads: number;
  /** Where the runtime's compute threads run: auto, off, or CPUs (lib/util/cpu_list.ts). */
  readonly cpuPinning: CpuPinning;
  /** Announced throughput override (tokens/s); undefined = measure. */
  readonly throughput?: number;
  readonly logLevel: LogLevelName;
  readonly logJson: boolean;
  /** Run without chain and reporter (private swarm without rewards). */
  readonly offline: boolean;
}

export interface ResolvedConfig {
  readonly config: Config;
  /** Where every key's value came from. */
  readonly sources: Readonly<Record<keyof Config, ConfigSource>>;
  /** When the tier was `auto`: which tier was chosen and why. */
  readonly tierReason?: string;
  /** Things to tell the user before going on (e.g. a secret given as a command-line flag). */
  readonly warnings: readonly string[];
}
