/**
 * The chain side of the node: the `ChainAgent` (wallet, registration, heartbeat, auto-claim) as a
 * `NodeChain`, plus the Oracle reporter fed by the shared metrics as a `NodeReporter`, and their
 * outcomes as /metrics gauges.
 * @module
 */
import { type ChainAgent, createChainAgent, modelHash, preflight } from "../chain/mod.ts";
import type { Config } from "../config/types.ts";
import { ConfigError, errorMessage } from "../errors.ts";
import { OracleReporter, registerNodeWithRetry } from "../reporter/mod.ts";
import type { Logger } from "../util/logger.ts";
import type { Metrics } from "../util/metrics.ts";
import type { NodeChain, NodeReporter } from "./types.ts";

const VERIFY_DROPPED = "plumise_verify_dropped_total";
const VERIFY_DROPPED_HELP =
  "0x20 attestations (VERIFY_ON_CHAIN) dropped because too many waited; heartbeats and claims go first";

/** Loads the wallet and builds the chain agent (nothing is sent before `start`). */
export async function createChainPart(
  config: Config,
  metrics: Metrics,
  logger: Logger,
): Promise<NodeChain & { agent: ChainAgent }> {
  const agent = await createChainAgent({
    privateKey: config.privateKey,
    keystore: config.keystore,
    keystorePassword: config.keystorePassword,
    rpcUrl: config.rpcUrl,
    chainId: config.chainId,
    model: config.model,
    rewardPool: config.rewardPool,
    agentRegistry: config.agentRegistry,
    claimThresholdWei: config.claimThresholdWei,
    maxGasPriceWei: config.maxGasPriceWei,
    reportInterval: config.reportInterval,
    heartbeatIntervalMs: config.heartbeatInterval * 1000,
    verifyOnChain: config.verifyOnChain,
    onVerifyDropped: () => metrics.inc(VERIFY_DROPPED, VERIFY_DROPPED_HELP),
    logger,
  });
  if (config.verifyOnChain) metrics.inc(VERIFY_DROPPED, VERIFY_DROPPED_HELP, 0);
  metrics.gauge("plumise_heartbeat_failures", "Heartbeat transactions that failed since start", () => {
    return agent.status().heartbeatFailures;
  });
  metrics.gauge(
    "plumise_last_heartbeat_seconds",
    "Unix time of the last successful heartbeat (0: none)",
    () => {
      return Math.floor((agent.status().lastHeartbeatAt ?? 0) / 1000);
    },
  );
  metrics.gauge("plumise_last_claim_seconds", "Unix time of the last reward claim (0: none)", () => {
    return Math.floor((agent.status().lastClaim?.at ?? 0) / 1000);
  });
  metrics.gauge("plumise_registered", "1 when the agent is registered on chain", () => {
    return agent.status().registered ? 1 : 0;
  });
  const log = logger.child({ part: "chain" });
  return {
    agent,
    address: agent.signer.address,
    async preflight({ signal }) {
      try {
        await preflight({ provider: agent.provider, address: agent.signer.address, logger, signal });
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        // An unreachable chain is offline mode: the agent retries in the background.
        log.warn("chain preflight failed; the chain agent will retry", { error: errorMessage(err) });
      }
    },
    start: ({ signal }) => agent.start({ signal }),
    stop: () => agent.stop(),
    status: () => ({ ...agent.status() }),
    signMessage: (message) => agent.signer.signMessage(message),
    recordInference(prompt, output, tokens) {
      if (!config.verifyOnChain || tokens < 1) return undefined;
      // keccak256 of the UTF-8 text (the same hash as the model id's)
      const proof = {
        modelHash: modelHash(config.model),
        inputHash: modelHash(prompt),
        outputHash: output.length > 0 ? modelHash(output) : "0x" + "00".repeat(32),
        tokenCount: tokens,
      };
      void agent.verifyInference(proof);
      return proof;
    },
  };
}

/** The Oracle reporter over the shared metrics, signed by the agent's wallet. */
export function createReporterPart(
  config: Config,
  chain: NodeChain & { agent: ChainAgent },
  metrics: Metrics,
  logger: Logger,
  options: { intervalMs?: number } = {},
): NodeReporter {
  const reporter = new OracleReporter({
    oracleUrl: config.oracleUrl,
    signer: chain.agent.signer,
    metrics,
    intervalMs: options.intervalMs ?? config.reportInterval * 1000,
    logger,
    // what the Oracle has not counted survives a restart (docs/operations.md, "Files a node keeps")
    stateDir: config.dataDir,
  });
  metrics.gauge("plumise_reports", "Oracle reports by outcome since start", () => {
    const s = reporter.status();
    return [[{ outcome: "accepted" }, s.accepted], [{ outcome: "failed" }, s.failed], [
      { outcome: "sent" },
      s.sent,
    ]];
  });
  const registration = new AbortController();
  return {
    start() {
      reporter.start();
      if (config.publicUrl) {
        void registerNodeWithRetry({
          oracleUrl: config.oracleUrl,
          signer: chain.agent.signer,
          endpoint: config.publicUrl,
          logger,
          signal: registration.signal,
        });
      }
      return Promise.resolve();
    },
    async stop(_final, _signal) {
      registration.abort();
      await reporter.stop(); // sends the final report (bounded by its own timeout)
    },
    status: () => ({ ...reporter.status() }),
    addProof: (proof) => reporter.addProof(proof),
  };
}
