import assert from "node:assert/strict";
import { ConfigError, redact } from "../errors.ts";
import { redactedConfig, requireWallet, resolveConfig } from "./resolve_config.ts";
import { SCHEMA } from "./schema.ts";

const KEY = "0x" + "ab".repeat(32);
const GiB = 1024 ** 3;

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("defaults: every key resolves with source default and the documented values", () => {
  const { config, sources } = resolveConfig({ env: { HOME: "/home/u" } });
  assert.equal(config.rpcUrl, "http://localhost:26902");
  assert.equal(config.chainId, 41956);
  assert.equal(config.oracleUrl, "http://localhost:15481");
  assert.equal(config.reportInterval, 60);
  assert.equal(config.model, "bigscience/bloom-560m");
  assert.equal(config.numBlocks, 2);
  assert.equal(config.rewardPool, "0x0000000000000000000000000000000000001000");
  assert.equal(config.claimThresholdWei, 1_000_000_000_000_000_000n);
  assert.equal(config.apiPort, 31331);
  assert.deepEqual([config.apiMaxConcurrent, config.apiTimeout, config.shutdownGrace], [16, 300, 10]);
  assert.deepEqual([config.maxSessions, config.sessionIdleTimeout], [64, 300]);
  assert.deepEqual([config.forwardMaxConcurrent, config.forwardMaxQueued], [2, 16]);
  assert.equal(config.cpuPinning, "auto");
  assert.equal(config.p2pPort, 31330);
  assert.equal(config.p2pHost, "0.0.0.0");
  assert.equal(config.device, "auto");
  assert.equal(config.verifyOnChain, false);
  assert.deepEqual(config.initialPeers, []);
  assert.equal(config.dataDir, "/home/u/.local/share/plumise");
  assert.equal(config.identityPath, "/home/u/.local/share/plumise/identity.key");
  assert.equal(config.hfHome, "/home/u/.cache/huggingface");
  for (const spec of SCHEMA) assert.equal(sources[spec.key], "default", spec.key);
  assert.ok(Object.isFrozen(config));
});

Deno.test("precedence: flag > env > .env > tier > default, for several keys", () => {
  const all = {
    flags: { model: "flag/model", reportInterval: "20", rpcUrl: "http://flag:1" },
    env: { MODEL_NAME: "env/model", REPORT_INTERVAL: "30", PLUMISE_RPC_URL: "http://env:1", NUM_BLOCKS: "5" },
    dotenv: {
      MODEL_NAME: "dot/model",
      REPORT_INTERVAL: "40",
      PLUMISE_RPC_URL: "http://dot:1",
      NUM_BLOCKS: "6",
      WEIGHTS: "fp32",
    },
    tier: "standard",
  };
  let r = resolveConfig(all);
  assert.equal(r.config.model, "flag/model");
  assert.equal(r.sources.model, "flag");
  assert.equal(r.config.reportInterval, 20);
  assert.equal(r.config.rpcUrl, "http://flag:1");
  assert.equal(r.config.numBlocks, 5);
  assert.equal(r.sources.numBlocks, "env");
  assert.equal(r.config.weights, "fp32");
  assert.equal(r.sources.weights, ".env");

  r = resolveConfig({ ...all, flags: {} });
  assert.equal(r.config.model, "env/model");
  assert.equal(r.sources.model, "env");
  assert.equal(r.config.reportInterval, 30);
  assert.equal(r.sources.reportInterval, "env");

  r = resolveConfig({ ...all, flags: {}, env: {} });
  assert.equal(r.config.model, "dot/model");
  assert.equal(r.sources.model, ".env");
  assert.equal(r.config.reportInterval, 40);
  assert.equal(r.config.numBlocks, 6);

  r = resolveConfig({ tier: "standard" });
  assert.equal(r.config.model, "bigscience/bloom-7b1");
  assert.equal(r.sources.model, "tier");
  assert.equal(r.config.numBlocks, 4);
  assert.equal(r.sources.numBlocks, "tier");
  assert.equal(r.config.reportInterval, 60);
  assert.equal(r.sources.reportInterval, "default");
  assert.equal(r.sources.tier, "flag");

  r = resolveConfig({});
  assert.equal(r.config.model, "bigscience/bloom-560m");
  assert.equal(r.sources.model, "default");
});

Deno.test("explicit MODEL_NAME / NUM_BLOCKS override the tier", () => {
  const r = resolveConfig({ tier: "pro", env: { NUM_BLOCKS: "3" }, dotenv: { MODEL_NAME: "my/llama" } });
  assert.equal(r.config.model, "my/llama");
  assert.equal(r.config.numBlocks, 3);
  assert.equal(r.config.weights, "int8");
  assert.equal(r.sources.weights, "tier");
});

Deno.test("PLUMISE_TIER from the environment picks the tier; an empty env value counts as unset", () => {
  const r = resolveConfig({ env: { PLUMISE_TIER: "ultra", MODEL_NAME: "" } });
  assert.equal(r.config.model, "meta-llama/Llama-3.1-70B");
  assert.equal(r.sources.tier, "env");
});

const BAD_CASES: Array<[string, Parameters<typeof resolveConfig>[0], string]> = [
  ["report interval low", { env: { REPORT_INTERVAL: "5" } }, "REPORT_INTERVAL=5: must be 10–300 seconds"],
  [
    "report interval high (.env)",
    { dotenv: { REPORT_INTERVAL: "301" } },
    "REPORT_INTERVAL (in .env file)=301: must be 10–300 seconds",
  ],
  [
    "report interval text",
    { flags: { reportInterval: "ten" } },
    "--report-interval=ten: must be a whole number; must be 10–300 seconds",
  ],
  ["chain id", { env: { PLUMISE_CHAIN_ID: "-1" } }, "PLUMISE_CHAIN_ID=-1: must be 1–9007199254740991"],
  [
    "rpc url",
    { env: { PLUMISE_RPC_URL: "localhost:26902" } },
    "PLUMISE_RPC_URL=localhost:26902: must be an http:// or https:// URL",
  ],
  [
    "oracle url scheme",
    { flags: { oracleUrl: "ftp://x" } },
    "--oracle-url=ftp://x: must be an http:// or https:// URL",
  ],
  ["num blocks", { env: { NUM_BLOCKS: "0" } }, "NUM_BLOCKS=0: must be 1–1024 blocks"],
  ["api port", { env: { API_PORT: "70000" } }, "API_PORT=70000: must be 0–65535"],
  ["p2p port", { flags: { p2pPort: "x" } }, "--port=x: must be a whole number; must be 0–65535"],
  [
    "address",
    { env: { REWARD_POOL_ADDRESS: "0x1000" } },
    "REWARD_POOL_ADDRESS=0x1000: must be a 0x-prefixed 20-byte hex address",
  ],
  [
    "registry address",
    { env: { AGENT_REGISTRY_ADDRESS: "nope" } },
    "AGENT_REGISTRY_ADDRESS=nope: must be a 0x-prefixed 20-byte hex address",
  ],
  [
    "threshold",
    { env: { CLAIM_THRESHOLD_WEI: "1.5" } },
    "CLAIM_THRESHOLD_WEI=1.5: must be a whole number of wei ≥ 0",
  ],
  ["bool", { env: { VERIFY_ON_CHAIN: "maybe" } }, "VERIFY_ON_CHAIN=maybe: must be true or false"],
  [
    "tier",
    { flags: { tier: "mega" } },
    "--tier=mega: must be one of lite, standard, pro, ultra, network, auto",
  ],
  ["weights", { env: { WEIGHTS: "int3" } }, "WEIGHTS=int3: must be one of fp32, int8"],
  ["device", { env: { DEVICE: "tpu" } }, "DEVICE=tpu: must be one of auto, cpu"],
  [
    "device cuda",
    { env: { DEVICE: "cuda" } },
    "DEVICE=cuda: no engine of this build computes on a GPU; use auto or cpu",
  ],
  [
    "device cuda:0 flag",
    { flags: { device: "CUDA:0" } },
    "--device=CUDA:0: no engine of this build computes on a GPU",
  ],
  ["span syntax", { flags: { blockIndices: "3-5" } }, "--block-indices=3-5: must be a:b with whole numbers"],
  ["span empty", { flags: { blockIndices: "5:5" } }, "--block-indices=5:5: end must be greater than start"],
  [
    "peers",
    { env: { PETALS_INITIAL_PEERS: "1.2.3.4:31330" } },
    'PETALS_INITIAL_PEERS=1.2.3.4:31330: must be comma-separated multiaddrs starting with "/"',
  ],
  ["threads", { env: { PLUMISE_THREADS: "0" } }, "PLUMISE_THREADS=0: must be 1–256 threads"],
  ["throughput", { flags: { throughput: "-3" } }, "--throughput=-3: must be 0.001–1000000000 tokens/s"],
  ["log level", { env: { LOG_LEVEL: "loud" } }, "LOG_LEVEL=loud: must be one of debug, info, warn, error"],
  ["empty path flag", { flags: { dataDir: "" } }, '--data-dir="": must not be empty'],
  ["heartbeat", { env: { HEARTBEAT_INTERVAL: "0" } }, "HEARTBEAT_INTERVAL=0: must be 1–3600 seconds"],
  [
    "api concurrency",
    { env: { API_MAX_CONCURRENT: "0" } },
    "API_MAX_CONCURRENT=0: must be 1–1024 generations",
  ],
  ["api timeout", { flags: { apiTimeout: "1.5" } }, "--api-timeout=1.5: must be"],
  ["max sessions", { env: { MAX_SESSIONS: "5000" } }, "MAX_SESSIONS=5000: must be 1–4096 sessions"],
  [
    "forward concurrency",
    { env: { FORWARD_MAX_CONCURRENT: "0" } },
    "FORWARD_MAX_CONCURRENT=0: must be 1–64 requests",
  ],
  [
    "forward queue",
    { flags: { forwardMaxQueued: "-1" } },
    "--forward-max-queued=-1: must be 0–4096 requests",
  ],
  ["shutdown grace", { flags: { shutdownGrace: "-1" } }, "--shutdown-grace=-1: must be 0–3600 seconds"],
  [
    "session idle",
    { env: { SESSION_IDLE_TIMEOUT: "5" } },
    "SESSION_IDLE_TIMEOUT=5: must be 10–1800 seconds",
  ],
  [
    "cpu pinning word",
    { env: { CPU_PINNING: "yes" } },
    'CPU_PINNING=yes: must be auto, off or a CPU list: CPU list "yes": "yes" is not a CPU number or range',
  ],
  [
    "cpu pinning range",
    { flags: { cpuPinning: "3-1" } },
    '--cpu-pinning=3-1: must be auto, off or a CPU list: CPU list "3-1": range 3-1 runs backwards',
  ],
  [
    "key and keystore",
    { env: { PLUMISE_PRIVATE_KEY: KEY, PLUMISE_KEYSTORE: "/k.json" } },
    "PLUMISE_PRIVATE_KEY and --keystore are both set",
  ],
  [
    "span vs blocks",
    { flags: { blockIndices: "0:3" }, env: { NUM_BLOCKS: "2" } },
    "--block-indices=0:3 serves 3 blocks but NUM_BLOCKS=2",
  ],
];

for (const [name, input, text] of BAD_CASES) {
  Deno.test(`validation: ${name}`, () => {
    const err = configError(() => resolveConfig(input));
    assert.equal(err.code, "CONFIG_INVALID");
    assert.equal(err.exitCode, 2);
    assert.ok(
      err.message.includes(text),
      `message ${JSON.stringify(err.message)} lacks ${JSON.stringify(text)}`,
    );
    assert.ok(err.hint.length > 0);
  });
}

Deno.test("validation: all problems are reported at once", () => {
  const err = configError(() =>
    resolveConfig({ env: { REPORT_INTERVAL: "5", API_PORT: "-1", WEIGHTS: "x" }, flags: { chainId: "0" } })
  );
  assert.equal(err.problems.length, 4);
  assert.match(err.message, /^4 configuration problems:/);
});

Deno.test("private key: 0x added, case normalised, 32 bytes checked, never shown", () => {
  const bare = "CD".repeat(32);
  const r = resolveConfig({ env: { PLUMISE_PRIVATE_KEY: bare } });
  assert.equal(r.config.privateKey, "0x" + "cd".repeat(32));
  const out = JSON.stringify(redactedConfig(r));
  assert.ok(!out.toLowerCase().includes("cd".repeat(32)), "key leaked into config output");
  assert.match(out, /"privateKey":\{"value":"\[redacted\]","source":"env"\}/);

  const shortKey = "0x" + "ef".repeat(31);
  const err = configError(() => resolveConfig({ flags: { privateKey: shortKey } }));
  assert.ok(err.message.includes("--private-key=[redacted, 64 characters]: must be 32 bytes of hex"));
  assert.ok(!err.message.includes("ef".repeat(31)), "bad key leaked into the error");
  assert.ok(!redact(`x ${shortKey} y`).includes("efef"), "registered secret not redacted in later text");
  const zero = configError(() => resolveConfig({ env: { PLUMISE_PRIVATE_KEY: "0".repeat(64) } }));
  assert.match(zero.message, /must not be zero/);
});

Deno.test("secrets (HF_TOKEN, API_SECRET, keystore password) are redacted in config output and later messages", () => {
  const r = resolveConfig({
    env: {
      HF_TOKEN: "hf_supersecret123",
      API_SECRET: "s3cr3t-token",
      PLUMISE_KEYSTORE_PASSWORD: "pw-123456",
    },
  });
  assert.equal(r.config.hfToken, "hf_supersecret123");
  const out = JSON.stringify(redactedConfig(r));
  for (const s of ["hf_supersecret123", "s3cr3t-token", "pw-123456"]) assert.ok(!out.includes(s));
  assert.equal(redact("token hf_supersecret123 used"), "token [redacted] used");
});

Deno.test("requireWallet names PLUMISE_PRIVATE_KEY with exit code 2", () => {
  const err = configError(() => requireWallet(resolveConfig({}).config));
  assert.equal(err.code, "MISSING_PRIVATE_KEY");
  assert.match(err.message, /PLUMISE_PRIVATE_KEY/);
  requireWallet(resolveConfig({ env: { PLUMISE_PRIVATE_KEY: KEY } }).config);
  requireWallet(resolveConfig({ env: { PLUMISE_KEYSTORE: "/tmp/k.json" } }).config);
});

Deno.test("tier auto chooses by available memory and says why", () => {
  const small = resolveConfig({ tier: "auto", system: { availableMemoryBytes: 1 * GiB } });
  assert.equal(small.config.tier, "lite");
  assert.equal(small.sources.tier, "auto");
  assert.match(small.tierReason!, /auto chose tier lite .*standard would need/);
  assert.equal(small.config.model, "bigscience/bloom-560m");

  const mid = resolveConfig({ tier: "auto", system: { availableMemoryBytes: 6 * GiB } });
  assert.equal(mid.config.tier, "pro");
  assert.equal(mid.config.model, "meta-llama/Llama-3.1-8B");

  const big = resolveConfig({ tier: "auto", system: { availableMemoryBytes: 15 * GiB } });
  assert.equal(big.config.tier, "ultra");
  assert.match(big.tierReason!, /network would need/);

  // from 16 GiB the network's own model: as many of qwen/qwen3-32b's blocks as fit
  const network = resolveConfig({ tier: "auto", system: { availableMemoryBytes: 20 * GiB } });
  assert.equal(network.config.tier, "network");
  assert.equal(network.config.model, "qwen/qwen3-32b");
  assert.equal(network.config.weights, "int8");
  assert.equal(network.config.numBlocks, 20);
  assert.equal(network.sources.numBlocks, "auto");
  assert.match(network.tierReason!, /auto chose tier network \(qwen\/qwen3-32b, 20 of 64 blocks × 581 MiB/);
  assert.doesNotMatch(network.tierReason!, /would need/);
  const huge = resolveConfig({ tier: "auto", system: { availableMemoryBytes: 256 * GiB } });
  assert.equal(huge.config.numBlocks, 64, "never more than the model has");

  const tiny = configError(() =>
    resolveConfig({ tier: "auto", system: { availableMemoryBytes: 100 * 1024 * 1024 } })
  );
  assert.match(tiny.message, /not even tier lite fits in 100 MiB/);
  const unknown = configError(() => resolveConfig({ tier: "auto" }));
  assert.match(unknown.message, /available memory could not be read/);
});

Deno.test("tier network: qwen/qwen3-32b at int8, blocks sized from the available memory, NUM_BLOCKS wins", () => {
  const r = resolveConfig({ tier: "network", system: { availableMemoryBytes: 8 * GiB } });
  assert.equal(r.config.tier, "network");
  assert.equal(r.config.model, "qwen/qwen3-32b");
  assert.equal(r.config.weights, "int8");
  // 60% of 8 GiB = 4.8 GiB, less 300 MiB, over 581 MiB per int8 block
  assert.equal(r.config.numBlocks, 7);
  assert.equal(r.sources.numBlocks, "auto");
  assert.equal(r.sources.model, "tier");
  assert.match(r.tierReason!, /^tier network: 7 of qwen\/qwen3-32b's 64 blocks \(581 MiB each at int8/);
  const pinned = resolveConfig({ tier: "network", env: { NUM_BLOCKS: "3" } });
  assert.equal(pinned.config.numBlocks, 3);
  assert.equal(pinned.sources.numBlocks, "env");
  const span = resolveConfig({ tier: "network", flags: { blockIndices: "60:64" } });
  assert.equal(span.config.numBlocks, 4);
  assert.match(
    configError(() => resolveConfig({ tier: "network", system: { availableMemoryBytes: 1 * GiB } })).message,
    /--tier=network: not one block of qwen\/qwen3-32b \(581 MiB at int8\) fits in 1\.0 GiB/,
  );
  assert.match(
    configError(() => resolveConfig({ env: { PLUMISE_TIER: "network" } })).message,
    /--tier=network: its blocks are sized from the available memory, which could not be read; set NUM_BLOCKS/,
  );
});

Deno.test("block indices pin the span and set numBlocks", () => {
  const r = resolveConfig({ flags: { blockIndices: "4:10" } });
  assert.deepEqual(r.config.blockIndices, { start: 4, end: 10 });
  assert.equal(r.config.numBlocks, 6);
  assert.equal(r.sources.numBlocks, "flag");
});

Deno.test("CPU_PINNING: auto, off (any case) or a CPU list, frozen", () => {
  assert.equal(resolveConfig({ env: { CPU_PINNING: "OFF" } }).config.cpuPinning, "off");
  assert.equal(resolveConfig({ flags: { cpuPinning: "auto" } }).config.cpuPinning, "auto");
  const r = resolveConfig({ env: { CPU_PINNING: " 2-3,0 " } });
  assert.deepEqual(r.config.cpuPinning, [2, 3, 0]);
  assert.ok(Object.isFrozen(r.config.cpuPinning));
  assert.equal(r.sources.cpuPinning, "env");
});

Deno.test("lists and urls are normalised", () => {
  const r = resolveConfig({
    env: {
      PETALS_INITIAL_PEERS: "/ip4/127.0.0.1/tcp/1/p2p/a, /ip4/127.0.0.1/tcp/2/p2p/b",
      ORACLE_API_URL: "http://o:1/",
    },
  });
  assert.deepEqual(r.config.initialPeers, ["/ip4/127.0.0.1/tcp/1/p2p/a", "/ip4/127.0.0.1/tcp/2/p2p/b"]);
  assert.equal(r.config.oracleUrl, "http://o:1");
});

Deno.test("an RPC URL's userinfo and query tokens are secrets: config output, errors and later messages", () => {
  const url = "https://carol:rpcpass7@rpc.example.net/plm?apikey=ak-2b7e151628&chain=41956";
  const r = resolveConfig({ env: { PLUMISE_RPC_URL: url } });
  assert.equal(r.config.rpcUrl, url, "the node still connects with the credentials");
  const out = JSON.stringify(redactedConfig(r));
  for (const s of ["carol", "rpcpass7", "ak-2b7e151628"]) assert.ok(!out.includes(s), `${s} in ${out}`);
  assert.equal(
    redactedConfig(r).rpcUrl.value,
    "https://[redacted]@rpc.example.net/plm?apikey=[redacted]&chain=[redacted]",
  );
  assert.equal(redact(`eth_chainId on ${url} failed`).includes("rpcpass7"), false);
  // a bad value next to it: the error names the redacted URL only
  const err = configError(() =>
    resolveConfig({ env: { ORACLE_API_URL: "ftp://dave:oraclepw@oracle.example/?token=t0ken-9f8e" } })
  );
  assert.ok(!err.message.includes("oraclepw") && !err.message.includes("t0ken-9f8e"), err.message);
});

Deno.test("secrets given as command-line flags (visible in ps) get a warning; env and .env do not", () => {
  const fromFlag = resolveConfig({
    flags: { privateKey: KEY, rpcUrl: "https://erin:pw@rpc.example.net" },
  });
  assert.equal(fromFlag.warnings.length, 2, fromFlag.warnings.join("\n"));
  assert.match(fromFlag.warnings[0], /--private-key.*visible.*ps.*PLUMISE_PRIVATE_KEY.*--keystore/s);
  assert.match(fromFlag.warnings[1], /--rpc-url.*credentials.*PLUMISE_RPC_URL/s);
  for (const w of fromFlag.warnings) assert.ok(!w.includes(KEY.slice(2)) && !w.includes("erin"), w);
  const fromEnv = resolveConfig({
    env: { PLUMISE_PRIVATE_KEY: KEY },
    dotenv: { PLUMISE_RPC_URL: "https://erin:pw@rpc.example.net" },
    flags: { rpcUrl: "https://rpc.example.net" },
  });
  assert.deepEqual(fromEnv.warnings, []);
});

Deno.test("API_CORS_ORIGINS: origins normalised and deduplicated, default none; paths, wildcards and other schemes refused", () => {
  assert.deepEqual(resolveConfig({}).config.apiCorsOrigins, []);
  const { config } = resolveConfig({
    env: {
      API_CORS_ORIGINS:
        "https://App.Example, http://localhost:3000 https://app.example/ https://x.example:443",
    },
  });
  assert.deepEqual(config.apiCorsOrigins, [
    "https://app.example",
    "http://localhost:3000",
    "https://x.example",
  ]);
  assert.deepEqual(
    resolveConfig({ flags: { apiCorsOrigins: "http://127.0.0.1:8080" } }).config.apiCorsOrigins,
    ["http://127.0.0.1:8080"],
  );
  for (
    const bad of [
      "*",
      "https://app.example/page",
      "app.example",
      "ftp://app.example",
      "null",
      "https://a.example?x=1",
    ]
  ) {
    const err = configError(() => resolveConfig({ env: { API_CORS_ORIGINS: bad } }));
    assert.match(
      err.message,
      /API_CORS_ORIGINS=.*must be comma-separated origins like https:\/\/app\.example/,
      bad,
    );
  }
});

Deno.test("API_SECRET must be a bearer token (RFC 6750 characters); the error never shows it", () => {
  assert.equal(resolveConfig({ env: { API_SECRET: "Ab0-._~+/xyz==" } }).config.apiSecret, "Ab0-._~+/xyz==");
  for (const bad of ["two words", "p@ssw0rd!", "ab=cd"]) {
    const err = configError(() => resolveConfig({ env: { API_SECRET: bad } }));
    assert.match(err.message, /API_SECRET=\[redacted, \d+ characters\]: must be a bearer token/);
    assert.ok(!err.message.includes(bad), "the secret leaked into the error");
  }
});
