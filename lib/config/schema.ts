/**
 * Every configuration key: its environment variable, command-line flag (legacy names
 * kept), type, range, default and description. The table of docs/configuration.md is
 * generated from this list (a test checks it), and the CLI builds its flags from it. This file
 * holds the keys of the wallet, chain, Oracle, model and HTTP API; those of the swarm, the files,
 * the runtime and logging are in swarm_runtime_keys.ts, NAT's in schema_nat.ts (the table's order
 * is this file's, then theirs).
 * @module
 */
import type { Config, TierName } from "./types.ts";
import type { KeySpec } from "./key_spec.ts";
import { SWARM_RUNTIME_KEYS } from "./swarm_runtime_keys.ts";

export type { DefaultContext, KeySpec, KeyType } from "./key_spec.ts";

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
    verbatim: true,
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
    description:
      "seconds between signed Oracle reports (at most 270 apart: the Oracle's window is 5 minutes)",
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
    description:
      "most seconds between two on-chain heartbeats (precompile 0x22); each is sent a tenth early (at most 30 s)",
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
    description: "weight format of the served blocks, and of the LM head of the generations this node runs",
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
    key: "maxGasPriceWei",
    env: "MAX_GAS_PRICE_WEI",
    flag: "max-gas-price-wei",
    arg: "<wei>",
    type: "bigint",
    default: 100_000_000_000n,
    description:
      "most gas price a transaction may offer (wei; default 100 gwei): above it nothing is sent and fee bumps stop",
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
    default: 16,
    description:
      "generations the HTTP API runs at once (their decode steps share weight passes); a request beyond them gets 429",
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
  ...SWARM_RUNTIME_KEYS,
];

export const SCHEMA_BY_KEY: ReadonlyMap<keyof Config, KeySpec> = new Map(SCHEMA.map((s) => [s.key, s]));

/** The camelCase attribute commander gives a long flag ("rpc-url" → "rpcUrl"). */
export function flagAttribute(flag: string): string {
  return flag.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

export type { TierName };
