/**
 * Every configuration key: its environment variable, command-line flag (legacy names
 * kept), type, range, default and description. The README's configuration table is
 * checked against this list by a test, and the CLI builds its flags from it.
 * @module
 */
import type { Config, TierName } from "./types.ts";
import { NAT_KEYS } from "./schema_nat.ts";

export type KeyType =
  | "string"
  | "int"
  | "number"
  | "bool"
  | "url"
  | "wsUrl"
  | "address"
  | "privateKey"
  | "bigint"
  | "enum"
  | "span"
  | "list"
  | "origins"
  | "token"
  | "cpus"
  | "path";

/** Values already resolved (defaults may depend on them, e.g. HOME). */
export interface DefaultContext {
  env: Readonly<Record<string, string | undefined>>;
  values: Partial<Record<keyof Config, unknown>>;
}

export interface KeySpec {
  readonly key: keyof Config;
  /** Environment variable (also read from the .env file). */
  readonly env?: string;
  /** Long flag without dashes, e.g. "rpc-url". */
  readonly flag?: string;
  /** Placeholder shown in help, e.g. "<url>"; omitted for booleans. */
  readonly arg?: string;
  readonly type: KeyType;
  readonly description: string;
  readonly min?: number;
  readonly max?: number;
  /** Unit used in range messages, e.g. "seconds". */
  readonly unit?: string;
  readonly choices?: readonly string[];
  /**
   * Values that name something real this build cannot do, each refused with its own reason
   * instead of "must be one of …" (e.g. `DEVICE=cuda` before any engine uses a GPU).
   */
  readonly refused?: readonly { readonly match: RegExp; readonly why: string }[];
  /** Redacted in every output. */
  readonly secret?: boolean;
  /** Tiers set this key. */
  readonly fromTier?: boolean;
  /** Built-in default (a function when it depends on other values). */
  readonly default?: unknown | ((ctx: DefaultContext) => unknown);
  /** Default shown in docs/help when the default is computed. */
  readonly defaultDoc?: string;
}

function homeDir(env: DefaultContext["env"]): string {
  return env.HOME ?? env.USERPROFILE ?? ".";
}

export const SCHEMA: readonly KeySpec[] = [
  {
    key: "privateKey",
    env: "PLUMISE_PRIVATE_KEY",
    flag: "private-key",
    arg: "<hex>",
    type: "privateKey",
    secret: true,
    description: "agent wallet key, 32 bytes hex (0x optional); prefer the env var or --keystore",
  },
  {
    key: "keystore",
    env: "PLUMISE_KEYSTORE",
    flag: "keystore",
    arg: "<path>",
    type: "path",
    description:
      "encrypted JSON keystore instead of a raw key (password: PLUMISE_KEYSTORE_PASSWORD or a prompt)",
  },
  {
    key: "keystorePassword",
    env: "PLUMISE_KEYSTORE_PASSWORD",
    type: "string",
    secret: true,
    description: "password of the keystore (env only)",
  },
  {
    key: "rpcUrl",
    env: "PLUMISE_RPC_URL",
    flag: "rpc-url",
    arg: "<url>",
    type: "url",
    default: "http://localhost:26902",
    description: "Plumise chain JSON-RPC endpoint",
  },
  {
    key: "chainId",
    env: "PLUMISE_CHAIN_ID",
    flag: "chain-id",
    arg: "<id>",
    type: "int",
    min: 1,
    max: Number.MAX_SAFE_INTEGER,
    default: 41956,
    description: "expected chain id (41956 mainnet, 419561 testnet); checked against eth_chainId",
  },
  {
    key: "oracleUrl",
    env: "ORACLE_API_URL",
    flag: "oracle-url",
    arg: "<url>",
    type: "url",
    default: "http://localhost:15481",
    description: "Plumise Oracle base URL (metrics reports)",
  },
  {
    key: "reportInterval",
    env: "REPORT_INTERVAL",
    flag: "report-interval",
    arg: "<seconds>",
    type: "int",
    min: 10,
    max: 300,
    unit: "seconds",
    default: 60,
    description: "seconds between signed Oracle reports",
  },
  {
    key: "heartbeatInterval",
    env: "HEARTBEAT_INTERVAL",
    flag: "heartbeat-interval",
    arg: "<seconds>",
    type: "int",
    min: 1,
    max: 3600,
    unit: "seconds",
    default: 300,
    description: "seconds between on-chain heartbeats (precompile 0x22)",
  },
  {
    key: "tier",
    env: "PLUMISE_TIER",
    flag: "tier",
    arg: "<tier>",
    type: "enum",
    choices: ["lite", "standard", "pro", "ultra", "network", "auto"],
    description:
      "preset of model, blocks, weights (network: qwen/qwen3-32b, as many blocks as fit; auto: largest that fits)",
  },
  {
    key: "model",
    env: "MODEL_NAME",
    flag: "model",
    arg: "<repo|dir>",
    type: "string",
    fromTier: true,
    default: "bigscience/bloom-560m",
    description: "Hugging Face repo id or local checkpoint directory",
  },
  {
    key: "revision",
    env: "MODEL_REVISION",
    flag: "revision",
    arg: "<rev>",
    type: "string",
    default: "main",
    description: "hub revision (branch, tag or commit)",
  },
  {
    key: "numBlocks",
    env: "NUM_BLOCKS",
    flag: "num-blocks",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 1024,
    unit: "blocks",
    fromTier: true,
    default: 2,
    description: "number of consecutive transformer blocks to serve",
  },
  {
    key: "blockIndices",
    env: "BLOCK_INDICES",
    flag: "block-indices",
    arg: "<a:b>",
    type: "span",
    description: "pin the served span to blocks [a, b) instead of choosing by coverage",
  },
  {
    key: "weights",
    env: "WEIGHTS",
    flag: "weights",
    arg: "<format>",
    type: "enum",
    choices: ["fp32", "int8"],
    fromTier: true,
    default: "int8",
    description: "weight format of the served blocks",
  },
  {
    key: "agentRegistry",
    env: "AGENT_REGISTRY_ADDRESS",
    flag: "agent-registry",
    arg: "<address>",
    type: "address",
    description: "optional AgentRegistry contract address",
  },
  {
    key: "rewardPool",
    env: "REWARD_POOL_ADDRESS",
    flag: "reward-pool",
    arg: "<address>",
    type: "address",
    default: "0x0000000000000000000000000000000000001000",
    description: "RewardPool contract address",
  },
  {
    key: "claimThresholdWei",
    env: "CLAIM_THRESHOLD_WEI",
    flag: "claim-threshold-wei",
    arg: "<wei>",
    type: "bigint",
    default: 1_000_000_000_000_000_000n,
    description: "auto-claim when pending rewards reach this many wei (and are > 0)",
  },
  {
    key: "verifyOnChain",
    env: "VERIFY_ON_CHAIN",
    flag: "verify-on-chain",
    type: "bool",
    default: false,
    description: "send a verifyInference (0x20) transaction after each generation",
  },
  {
    key: "apiHost",
    env: "API_HOST",
    flag: "api-host",
    arg: "<ip>",
    type: "string",
    default: "0.0.0.0",
    description: "listen address of the node HTTP API",
  },
  {
    key: "apiPort",
    env: "API_PORT",
    flag: "api-port",
    arg: "<port>",
    type: "int",
    min: 0,
    max: 65535,
    default: 31331,
    description: "port of the node HTTP API (0: any free port)",
  },
  {
    key: "apiSecret",
    env: "API_SECRET",
    type: "token",
    secret: true,
    description:
      "bearer token the HTTP API requires when set (env only): letters, digits and - . _ ~ + / (RFC 6750)",
  },
  {
    key: "apiCorsOrigins",
    env: "API_CORS_ORIGINS",
    flag: "api-cors-origins",
    arg: "<origins>",
    type: "origins",
    default: [],
    description:
      "comma-separated web origins (https://app.example) whose pages may call the HTTP API from a browser; a request with any other Origin header gets 403",
  },
  {
    key: "apiMaxConcurrent",
    env: "API_MAX_CONCURRENT",
    flag: "api-max-concurrent",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 1024,
    unit: "generations",
    default: 4,
    description: "generations the HTTP API runs at once; a request beyond them gets 429",
  },
  {
    key: "apiTimeout",
    env: "API_TIMEOUT",
    flag: "api-timeout",
    arg: "<seconds>",
    type: "int",
    min: 1,
    max: 86_400,
    unit: "seconds",
    default: 300,
    description: "an HTTP API generation still running after this long is stopped with 504",
  },
  {
    key: "shutdownGrace",
    env: "SHUTDOWN_GRACE",
    flag: "shutdown-grace",
    arg: "<seconds>",
    type: "int",
    min: 0,
    max: 3600,
    unit: "seconds",
    default: 10,
    description:
      "on SIGINT/SIGTERM, running generations and swarm steps get this long to finish (a second signal exits at once)",
  },
  {
    key: "publicUrl",
    env: "PUBLIC_URL",
    flag: "public-url",
    arg: "<url>",
    type: "url",
    description: "public URL of this node's HTTP API, registered with the Oracle for the gateway",
  },
  {
    key: "p2pHost",
    env: "PETALS_HOST",
    flag: "host",
    arg: "<ip>",
    type: "string",
    default: "0.0.0.0",
    description: "swarm (libp2p TCP) listen address",
  },
  {
    key: "p2pPort",
    env: "PETALS_PORT",
    flag: "port",
    arg: "<port>",
    type: "int",
    min: 0,
    max: 65535,
    default: 31330,
    description: "swarm listen port (0: any free port)",
  },
  {
    key: "directPort",
    env: "DIRECT_PORT",
    flag: "direct-port",
    arg: "<port>",
    type: "int",
    min: -1,
    max: 65535,
    default: 31332,
    description:
      "TCP port of the direct path for inference steps, on the swarm listen address (0: any free port, -1: off)",
  },
  {
    key: "initialPeers",
    env: "PETALS_INITIAL_PEERS",
    flag: "initial-peers",
    arg: "<multiaddrs>",
    type: "list",
    default: [],
    description: "comma-separated bootstrap multiaddrs (/ip4/…/tcp/…/p2p/…)",
  },
  {
    key: "announceIp",
    env: "PETALS_ANNOUNCE_IP",
    flag: "announce-ip",
    arg: "<ip>",
    type: "string",
    description: "public IP to announce to the swarm",
  },
  ...NAT_KEYS,
  {
    key: "dataDir",
    env: "PLUMISE_DATA_DIR",
    flag: "data-dir",
    arg: "<dir>",
    type: "path",
    default: ({ env }: DefaultContext) => `${env.XDG_DATA_HOME ?? `${homeDir(env)}/.local/share`}/plumise`,
    defaultDoc: "$XDG_DATA_HOME/plumise or ~/.local/share/plumise",
    description: "data directory (peer identity, throughput cache, keystore)",
  },
  {
    key: "identityPath",
    env: "PETALS_IDENTITY_PATH",
    flag: "identity-path",
    arg: "<path>",
    type: "path",
    default: ({ values }: DefaultContext) => `${values.dataDir}/identity.key`,
    defaultDoc: "<data dir>/identity.key",
    description: "persisted Ed25519 peer key (created on first start, mode 0600)",
  },
  {
    key: "device",
    env: "DEVICE",
    flag: "device",
    arg: "<device>",
    type: "enum",
    choices: ["auto", "cpu"],
    refused: [{
      match: /^(cuda(:\d+)?|gpu|mps|rocm)$/,
      why: "no engine of this build computes on a GPU; use auto or cpu (the blocks run on the CPU)",
    }],
    default: "auto",
    description:
      "compute device (this build computes on the CPU; cuda is refused until an engine uses a GPU)",
  },
  {
    key: "hfEndpoint",
    env: "HF_ENDPOINT",
    flag: "hf-endpoint",
    arg: "<url>",
    type: "url",
    default: "https://huggingface.co",
    description: "Hugging Face hub endpoint (mirrors, tests)",
  },
  {
    key: "hfToken",
    env: "HF_TOKEN",
    type: "string",
    secret: true,
    description: "Hugging Face access token for gated models (env only)",
  },
  {
    key: "hfHome",
    env: "HF_HOME",
    flag: "hf-home",
    arg: "<dir>",
    type: "path",
    default: ({ env }: DefaultContext) => `${env.XDG_CACHE_HOME ?? `${homeDir(env)}/.cache`}/huggingface`,
    defaultDoc: "$XDG_CACHE_HOME/huggingface or ~/.cache/huggingface",
    description: "Hugging Face cache home (checkpoints go to $HF_HOME/hub, shared with Python tools)",
  },
  {
    key: "cacheTokens",
    env: "CACHE_TOKENS",
    flag: "cache-tokens",
    arg: "<n>",
    type: "int",
    min: 0,
    max: 100_000_000,
    unit: "tokens",
    default: 0,
    description: "KV cache budget in tokens (batch × length × blocks); 0: derive from memory",
  },
  {
    key: "maxSessions",
    env: "MAX_SESSIONS",
    flag: "max-sessions",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 4096,
    unit: "sessions",
    default: 64,
    description: "inference sessions this server keeps open for swarm clients at once; more are refused",
  },
  {
    key: "sessionIdleTimeout",
    env: "SESSION_IDLE_TIMEOUT",
    flag: "session-idle-timeout",
    arg: "<seconds>",
    type: "int",
    min: 10,
    max: 1800,
    unit: "seconds",
    default: 300,
    description:
      "a swarm session without a step for this long is closed and its cache freed (any session closes after 30 min)",
  },
  {
    key: "forwardMaxConcurrent",
    env: "FORWARD_MAX_CONCURRENT",
    flag: "forward-max-concurrent",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 64,
    unit: "requests",
    default: 2,
    description:
      "swarm forward requests (cache-less passes) computed at once; inference steps always go first",
  },
  {
    key: "forwardMaxQueued",
    env: "FORWARD_MAX_QUEUED",
    flag: "forward-max-queued",
    arg: "<n>",
    type: "int",
    min: 0,
    max: 4096,
    unit: "requests",
    default: 16,
    description:
      "swarm forward requests waiting for a slot; more are refused at once (BUSY), and one whose requester gave up or timed out is dropped",
  },
  {
    key: "threads",
    env: "PLUMISE_THREADS",
    flag: "threads",
    arg: "<n>",
    type: "int",
    min: 1,
    max: 256,
    unit: "threads",
    default: 2,
    description: "onnxruntime intra-op threads",
  },
  {
    key: "cpuPinning",
    env: "CPU_PINNING",
    flag: "cpu-pinning",
    arg: "<auto|off|cpus>",
    type: "cpus",
    default: "auto",
    description:
      "pin the runtime's compute threads to distinct CPUs (Linux): auto = when THREADS equals the CPUs this process may use; off; or a list such as 2,3 or 4-7",
  },
  {
    key: "throughput",
    env: "THROUGHPUT",
    flag: "throughput",
    arg: "<tok/s>",
    type: "number",
    min: 0.001,
    max: 1e9,
    unit: "tokens/s",
    description: "announce this throughput instead of measuring it",
  },
  {
    key: "logLevel",
    env: "LOG_LEVEL",
    flag: "log-level",
    arg: "<level>",
    type: "enum",
    choices: ["debug", "info", "warn", "error"],
    default: "info",
    description: "log level",
  },
  {
    key: "logJson",
    env: "LOG_JSON",
    flag: "log-json",
    type: "bool",
    default: false,
    description: "JSON log lines even on a terminal (always JSON when stderr is not a terminal)",
  },
  {
    key: "offline",
    env: "PLUMISE_OFFLINE",
    flag: "offline",
    type: "bool",
    default: false,
    description: "private swarm mode: no chain, no Oracle reports, no rewards",
  },
];

export const SCHEMA_BY_KEY: ReadonlyMap<keyof Config, KeySpec> = new Map(SCHEMA.map((s) => [s.key, s]));

/** The camelCase attribute commander gives a long flag ("rpc-url" → "rpcUrl"). */
export function flagAttribute(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export type { TierName };
