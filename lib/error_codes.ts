/**
 * The registry of every error code plumise raises, with what each means. A `PlumiseError`'s code
 * is an `ErrorCode` (a key of this table), so a misspelt code, in a constructor or in a comparison
 * such as `err.code === "CACHE_FULL"`, is a type error. Codes are stable API: a released code never
 * changes its name or meaning; new ones are added here. Which codes travel in the swarm protocols'
 * `error` frames: `PROTOCOL_ERROR_CODES` (lib/wire/error_codes.ts). The table in
 * docs/operations.md is generated from this one (`deno run scripts/error_table.ts`).
 * @module
 */

export const ERROR_CODES = {
  // ── settings, flags and user input (ConfigError: exit code 2) ──
  CONFIG_INVALID: "one or more settings, flags or .env values are malformed or out of range (all are listed)",
  CLI_FLAG_INVALID: "a command-line flag has a value outside its range",
  ENV_FILE_MISSING: "the file given with --env-file does not exist",
  ENV_FILE_UNREADABLE: "the file given with --env-file cannot be read",
  MISSING_PRIVATE_KEY: "no agent key: neither PLUMISE_PRIVATE_KEY nor --keystore is set (and not --offline)",
  INVALID_PRIVATE_KEY: "PLUMISE_PRIVATE_KEY is not 32 bytes of hex or not a valid secp256k1 key",
  WALLET_MISSING: "a command needs the agent wallet and none is configured",
  KEYSTORE_UNREADABLE: "the keystore file cannot be read",
  KEYSTORE_INVALID: "the keystore file is not an encrypted JSON keystore",
  KEYSTORE_BAD_PASSWORD: "the keystore password is wrong",
  KEYSTORE_PASSWORD_MISSING:
    "a keystore is configured but no password was given and there is no terminal to ask",
  KEYSTORE_PASSWORD_EMPTY: "a keystore would be created with an empty password",
  KEYSTORE_PASSWORD_MISMATCH: "the password and its repetition differ",
  KEYSTORE_EXISTS: "`wallet new` would overwrite an existing keystore",
  KEYSTORE_UNWRITABLE: "the keystore file cannot be written",
  BLOCK_INDICES_INVALID: "BLOCK_INDICES is not a span a:b inside the model's blocks",
  CACHE_TOO_SMALL: "CACHE_TOKENS is too small to hold the session that measures the span's speed",
  API_OPTIONS: "the HTTP API was given impossible options (such as no concurrent generation at all)",
  SAMPLING_INVALID: "sampling options (temperature, top-k, top-p, repetition penalty, seed) are out of range",
  MAX_NEW_TOKENS_INVALID: "maxNewTokens is not an integer ≥ 1",
  STOP_STRING_INVALID: "a stop string is empty",
  PREFILL_CHUNK_INVALID: "prefillChunkTokens is not an integer ≥ 1",
  EMPTY_PROMPT: "the prompt encodes to zero tokens",
  NO_INITIAL_PEERS: "a swarm command was given no initial peers to reach the swarm through",
  AGENT_REGISTRY_INVALID: "AGENT_REGISTRY_ADDRESS is not an address",
  REWARD_POOL_INVALID: "REWARD_POOL_ADDRESS is not an address",
  CHAIN_ID_MISMATCH: "the RPC endpoint serves another chain than PLUMISE_CHAIN_ID",
  MODEL_ID_EMPTY: "the model id to register is empty",
  MODEL_HASH_INVALID: "a model hash is not 32 bytes of hex",
  BYTES32_TOO_LONG: "a text registered on chain is longer than 32 bytes",
  PROOF_INVALID: "an inference proof field is not a 32-byte hash",
  BAD_INPUT: "malformed input: a wrong shape or hidden size, non-finite values, bad hypothesis ids or " +
    "positions, or a malformed input file",

  // ── the block runtime (RuntimeError; also RuntimeErrorCode in lib/runtime/types.ts) ──
  CACHE_FULL: "the KV cache budget cannot hold the requested batch × maxLength × blocks tokens",
  UNKNOWN_SESSION: "the inference session is not open (never opened, closed, or expired)",
  TOO_LONG: "the step would take the session past its maxLength (or a forward past the runtime's limit)",
  BAD_SPAN: "the requested span of blocks is not inside the served span (or the model)",
  NOT_RUNNING: "the runtime (or the part holding it) is stopped or was not started",
  INSUFFICIENT_MEMORY: "the machine has less memory available than the client head needs; it is not loaded",
  BAD_MEASUREMENT: "a throughput measurement was asked for with impossible options",
  BAD_PINNING: "CPU_PINNING names CPUs this process may not use, too few of them, or pinning is unsupported",
  UNSUPPORTED_MODEL: "the model type or a feature of its config is not supported",
  BAD_CHECKPOINT: "a checkpoint file is missing, truncated or inconsistent",
  ENGINE_FAILED:
    "onnxruntime or the runtime worker failed (a bug, out of memory, or a graph onnxruntime refused)",
  NO_DIRECT: "a direct path was asked of a runtime started without a direct-path listener",

  // ── the model hub (HubError) ──
  HUB_NOT_FOUND: "the hub has no such repository, revision or file",
  HUB_UNAUTHORIZED: "the hub refused access: HF_TOKEN is missing or lacks access (gated model)",
  HUB_HTTP_ERROR: "the hub answered with an unexpected HTTP status",
  HUB_TIMEOUT: "the hub did not answer in time",
  HUB_UNREACHABLE: "the hub cannot be reached",
  HUB_INTERRUPTED: "a download ended early (it is retried and resumed)",
  HUB_CORRUPT: "a downloaded file does not match the hub's checksum",
  HUB_DISK_FULL: "the disk of the model cache (HF_HOME) is full; not retried",
  HUB_CACHE_UNWRITABLE: "this user cannot write the model cache (HF_HOME)",
  HUB_BAD_PATH: "a file name, revision, commit or ETag would put a file outside the model's cache folder",

  // ── the swarm protocols' error frames (see PROTOCOL_ERROR_CODES) ──
  BAD_FRAME: "a malformed, truncated or out-of-order protocol message",
  TOO_LARGE: "a frame or message exceeds its size limit",
  WRONG_MODEL: "the server serves another model",
  SPAN_NOT_SERVED: "the server does not serve the requested blocks",
  SESSION_LIMIT: "the server has as many open sessions as it allows",
  TIMEOUT: "an operation timed out: a peer, the RPC or a generation did not finish in time",
  INTERNAL: "an unexpected internal failure (a bug); see the log",
  BUSY: "the server has as much forward work running and queued as it takes; route elsewhere or retry",
  REMOTE_ERROR: "a server answered with an error code this version does not know (a newer peer); " +
    "its code is in details.remoteCode",

  // ── wire, direct path and links (WireError) ──
  STREAM_CLOSED: "the stream or connection closed before the expected reply",
  NOT_STARTED: "a part was used before start()",
  DIRECT_FAILED: "the direct path to a server could not be set up (the session keeps the libp2p stream)",
  DIRECT_PORT_IN_USE: "DIRECT_PORT is taken by another process",
  SWARM_PORT_IN_USE: "PETALS_PORT (the swarm port) is taken by another process",
  DIRECT_LISTEN_FAILED: "the direct path's port cannot be opened",
  LINK_REFUSED: "a server refused to link to the next server (a refused target, a failed connection)",
  NO_LINK: "server-to-server links need both sessions on direct paths",
  PUNCH_FAILED: "a hole punch to a server behind NAT failed (the session stays on its relayed stream)",

  // ── the swarm: identity, records, servers, routing, sessions (SwarmError) ──
  IDENTITY_INVALID: "the peer identity file is not an Ed25519 libp2p key",
  IDENTITY_UNREADABLE: "the peer identity file cannot be read",
  IDENTITY_UNWRITABLE: "the peer identity file cannot be created",
  LIBP2P_CREATE_FAILED: "the libp2p node cannot be created on the swarm host and port",
  RECORD_INVALID: "a server record is malformed or from an incompatible version",
  RECORD_BAD_SIGNATURE: "a server record's signature does not verify against its peer id",
  RECORD_EXPIRED: "a server record has expired",
  RECORD_PEER_MISMATCH: "a node was asked to sign a record for another peer id",
  NO_SPAN: "the server cannot announce before it has chosen a span",
  NO_RUNTIME: "the server was asked to serve without a started runtime",
  MOVE_NOT_SERVED: "after a rebalance, the new runtime does not serve the span moved to",
  STOPPED: "the swarm server is stopping",
  NO_PEERS: "no server record of the model came from the initial peers",
  NO_PEER_ANSWERED: "none of the bootstrap peers answered",
  MISSING_BLOCKS: "no usable server covers some of the model's blocks",
  BAD_ROUTE_RANGE: "a route was asked for a range of blocks that is not a range",
  BAD_SESSION: "an inference session was asked for a range of blocks that is not a range",
  BAD_SHAPE: "hidden states with a malformed shape",
  BAD_REPLY: "a server answered a step with outputs of the wrong shape",
  STEP_IN_PROGRESS: "a session step was sent before the previous one finished",
  SESSION_CLOSED: "the inference session is closed",
  SESSION_BROKEN: "the session lost its input history in an earlier failed step",
  SESSION_FAILED: "a step failed on every server tried for a span, up to the retry limit",
  FORWARD_FAILED: "a forward pass failed on every server tried",
  CLIENT_STOPPED: "the swarm client is stopped",
  CONVERSATION_MISMATCH: "a conversation's tokens and its session's position disagree",
  GENERATION_REUSED: "a Generation was iterated twice",

  // ── the chain (ChainError) ──
  CHAIN_BAD_URL: "PLUMISE_RPC_URL is not an http(s) URL",
  CHAIN_UNREACHABLE: "the chain's RPC endpoint cannot be reached (retried with backoff)",
  CHAIN_TIMEOUT: "the chain's RPC endpoint did not answer in time (retried with backoff)",
  CHAIN_BAD_RESPONSE: "the RPC endpoint answered something that is not the expected JSON-RPC",
  CHAIN_METHOD_NOT_FOUND: "the RPC endpoint does not know a method (an old or foreign chain)",
  CHAIN_RPC_ERROR: "the RPC endpoint returned an error",
  INSUFFICIENT_FUNDS: "the agent wallet has too little PLM to pay for a transaction's gas (retried)",
  CHAIN_REVERT: "a call was reverted by the chain",
  CHAIN_CLOSED: "the chain provider was used after it was closed",
  TX_WOULD_REVERT: "a transaction's simulation reverts; it is not sent",
  TX_REVERTED: "a sent transaction reverted (not retried in a loop)",
  RECEIPT_TIMEOUT: "a sent transaction was not mined in time (it stays tracked; no second one is sent)",
  TX_QUEUE_FULL: "a low-priority transaction (a VERIFY_ON_CHAIN attestation) was dropped: the queue is full",
  TX_DISPLACED: "another transaction of this wallet took the nonce (another process with the same key?)",
  GAS_PRICE_TOO_HIGH:
    "the RPC's gas price is above MAX_GAS_PRICE_WEI: the transaction is not sent (tried again later)",

  // ── the Oracle (ReporterError) ──
  ORACLE_URL_INVALID: "ORACLE_API_URL is not a URL",
  PUBLIC_URL_INVALID: "PUBLIC_URL is not an http(s) URL",
  REPORT_INTERVAL_INVALID: "the report interval is not positive",
  REPORT_INVALID: "a metrics report failed its own checks and was not sent (a bug)",
  ORACLE_UNREACHABLE: "the Oracle cannot be reached (the next report carries the cumulative totals)",
  ORACLE_TIMEOUT: "the Oracle did not answer in time (the next report carries the cumulative totals)",
  ORACLE_REFUSED: "the Oracle refused the node's registration (not retried)",
  ORACLE_BAD_REPLY: "the Oracle answered something unexpected",
  ORACLE_VIEW_UNAVAILABLE: "the Oracle has no view of this agent (yet)",

  // ── the native engine (RuntimeError) ──
  NATIVE_UNSUPPORTED_PLATFORM: "no onnxruntime library exists for this operating system and architecture",
  NATIVE_SOURCE_MISSING: "the onnxruntime library to copy into the cache is missing (dependencies or binary)",
  NATIVE_SOURCE_CORRUPT: "the onnxruntime library to copy does not match its pinned size and sha256",
  NATIVE_CACHE_UNWRITABLE: "the cache folder for the onnxruntime library cannot be written",
  NATIVE_LOAD_FAILED:
    "the onnxruntime library cannot be loaded (a missing system library, another architecture)",

  // ── the system service (ConfigError, PlumiseError) ──
  SERVICE_UNSUPPORTED_OS: "`plumise service` needs Linux and systemd",
  SERVICE_BINARY_INVALID: "--binary is not an absolute path to a file",
  SERVICE_KEYSTORE_INVALID: "--keystore is not an absolute path to a file",
  SERVICE_NO_WALLET: "the service would have no wallet: no key, no keystore, or no keystore password",
  SERVICE_CONFIG_INVALID: "the service's settings (tier, env file) do not resolve",
  SERVICE_ENV_VALUE: "a value cannot be written to the env file (it spans lines or mixes quotes)",
  SERVICE_NOT_PERMITTED: "the unit, env file or directories cannot be written (run it as root)",
  SERVICE_SYSTEMCTL_FAILED: "systemctl is missing or failed",

  // ── the node and the HTTP API (UnavailableError, ApiError) ──
  NODE_STATE: "the node cannot start from its current state",
  DATA_DIR_LOCKED: "another `plumise serve` process uses this data directory",
  IDENTITY_LOCKED:
    "the peer identity file is in use by another plumise serve process (with another data dir)",
  DATA_DIR_UNUSABLE: "the data directory cannot be created or written",
  NOT_PREPARED: "the generator is not loaded yet",
  INTERRUPTED: "interrupted by a signal",
  API_PORT_IN_USE: "API_PORT is taken by another process",
  API_LISTEN_FAILED: "the HTTP API's port cannot be opened",
  NOT_FOUND: "HTTP 404: no such route",
  METHOD_NOT_ALLOWED: "HTTP 405: the route does not take this method",
  UNAUTHORIZED: "HTTP 401: the bearer token is missing or wrong",
  BAD_PATH: "HTTP 400: the request path is not valid percent-encoding",
  ORIGIN_NOT_ALLOWED: "HTTP 403: a browser request from an origin not listed in API_CORS_ORIGINS",
  UNSUPPORTED_MEDIA_TYPE: "HTTP 415: a generation's body is not declared as application/json",
  BODY_TIMEOUT: "HTTP 408: the request body did not arrive in time",
  INVALID_JSON: "HTTP 400: the request body is not a JSON object",
  INVALID_PARAMETER: "HTTP 400: a request parameter is missing, of the wrong type or out of range",
  UNSUPPORTED:
    "HTTP 400: a request asks for what this node does not do (logprobs, JSON mode, penalties, forced tools)",
  BODY_TOO_LARGE: "HTTP 413: the request body exceeds the limit",
  PROMPT_TOO_LONG: "HTTP 400: the prompt is longer than the model's context",
  MODEL_NOT_FOUND: "HTTP 404: the request names a model this node does not serve",
  CHAT_TEMPLATE_INVALID: "HTTP 500: the checkpoint's chat template does not parse",
  CHAT_TEMPLATE_REJECTED: "HTTP 400: the chat template rejected the messages",
  TOO_MANY_REQUESTS: "HTTP 429: as many generations run as API_MAX_CONCURRENT allows",
  LOADING: "HTTP 503: the model is still loading",
  SHUTTING_DOWN: "HTTP 503: the node is shutting down",
  CLIENT_CLOSED: "HTTP 499: the client closed the request before it finished",
} as const satisfies Record<string, string>;

/** A stable error code: one of `ERROR_CODES`' keys. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** True for a code of the registry. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(ERROR_CODES, code);
}
