/**
 * The composition root of `plumise serve`: builds the parts from the resolved config and runs them
 * in the start order of docs/architecture.md, one info log line per phase:
 *
 *   HTTP API → parts (wallet/identity) → chain preflight → swarm up → choose blocks → announce
 *   `joining` → load blocks → throughput → serve + announce `online` → register on chain if
 *   needed → reporter, heartbeat, reward loops.
 *
 * The API listens first so that `/health` answers while blocks download and load: 503 `loading`
 * with the phase in progress as its reason, 200 `ok` only once the node is online and the swarm
 * covers the model (lib/api/health_report.ts); generations get 503 LOADING until then.
 *
 * `stop(graceMs)` (driven by the CLI on SIGINT/SIGTERM) announces `offline` first so clients route
 * elsewhere, lets running HTTP generations and swarm steps finish within the grace period (then
 * refuses them), sends a final Oracle report, and stops the rest in reverse order. It never throws
 * and is idempotent. A failed start tears down what it had started.
 * @module
 */
import { ApiServer } from "../api/api_server.ts";
import { GatewayRelay } from "../api/gateway_relay.ts";
import type { NodeStatus, NodeStatusSource } from "../api/types.ts";
import type { Config } from "../config/types.ts";
import { ConfigError, errorMessage, PlumiseError, UnavailableError } from "../errors.ts";
import { type AbortOptions, untilAborted, withTimeout } from "../util/abort.ts";
import { type Logger, silentLogger } from "../util/logger.ts";
import { Metrics } from "../util/metrics.ts";
import { type DataDirLock, lockDataDir } from "./data_dir_lock.ts";
import { nodeGenerator } from "./node_generator.ts";
import type { NodeParts, NodePartsFactory, NodeSpan, NodeState } from "./types.ts";

export interface NodeOptions {
  /** Builds the parts; default: the real runtime/swarm/chain/reporter (loaded lazily). */
  readonly parts?: NodePartsFactory;
  readonly logger?: Logger;
  /** Shared metrics (default: a new registry). */
  readonly metrics?: Metrics;
  /** Limits for the HTTP API (defaults of ApiHandler otherwise). */
  readonly api?: { maxConcurrent?: number; requestTimeoutMs?: number; maxBodyBytes?: number };
  /** Longest a final report / offline announcement may take at stop (default 5000 ms). */
  readonly stopStepTimeoutMs?: number;
  /**
   * Hold `config.dataDir` for this process from start to stop (default: with the real parts, which
   * keep the peer identity there; not with injected parts).
   */
  readonly lockDataDir?: boolean;
}

export class PlumiseNode implements NodeStatusSource {
  readonly config: Config;
  readonly metrics: Metrics;
  readonly #log: Logger;
  readonly #options: NodeOptions;
  #state: NodeState = "idle";
  #parts?: NodeParts;
  #span?: NodeSpan;
  #announced = false;
  #api?: ApiServer;
  #relay?: GatewayRelay;
  #stopping?: Promise<void>;
  #startedAt = 0;
  #msToOnline?: number;
  #lock?: DataDirLock;
  /** The start phase in progress (shown by /health while starting). */
  #doing?: string;
  /** Which parts were started (and so must be stopped). */
  #started = { swarm: false, runtime: false, chain: false, reporter: false };

  constructor(config: Config, options: NodeOptions = {}) {
    this.config = config;
    this.#options = options;
    this.metrics = options.metrics ?? new Metrics();
    this.#log = (options.logger ?? silentLogger).child({ part: "node" });
  }

  get state(): NodeState {
    return this.#state;
  }

  /** The served span, once chosen (the swarm's current one after a rebalancing move). */
  get span(): NodeSpan | undefined {
    const now = this.#parts?.swarm.status().span;
    return now ? { start: now.start, end: now.end } : this.#span;
  }

  /** `http://host:port` of the HTTP API, once listening. */
  get apiUrl(): string | undefined {
    return this.#api?.url;
  }

  /** Milliseconds from `start()` to `online` (undefined before). */
  get msToOnline(): number | undefined {
    return this.#msToOnline;
  }

  /** What /health shows. */
  status(): NodeStatus {
    const p = this.#parts;
    const swarm = p?.swarm.status() ?? {};
    const extra: Record<string, unknown> = { node_state: this.#state, offline_mode: this.config.offline };
    if (p?.chain) extra.chain = safe(() => p.chain!.status());
    if (p?.reporter) extra.reporter = safe(() => p.reporter!.status());
    if (this.#relay) extra.gateway_relay = this.#relay.status();
    if (swarm.reachability) extra.reachability = swarm.reachability;
    return {
      address: p?.chain?.address,
      peerId: swarm.peerId,
      span: this.span,
      state: this.#state === "online" ? "online" : this.#announced ? "joining" : this.#state,
      starting: this.#state === "starting" ? this.#doing : undefined,
      coverage: swarm.coverage,
      extra,
    };
  }

  /**
   * GATEWAY_RELAY_URL: one outbound WebSocket to the gateway, signed in with the agent's wallet,
   * whose requests run through this node's HTTP API handler (lib/api/gateway_relay.ts).
   */
  #startGatewayRelay(parts: NodeParts, api: ApiServer): void {
    const chain = parts.chain;
    if (!chain?.signMessage) {
      throw new ConfigError(
        "CONFIG_INVALID",
        "GATEWAY_RELAY_URL is set but the node has no agent wallet to sign in with (offline mode)",
        { hint: "unset GATEWAY_RELAY_URL, or run with a wallet (PLUMISE_KEYSTORE / PLUMISE_PRIVATE_KEY)" },
      );
    }
    this.#relay = new GatewayRelay({
      url: this.config.gatewayRelayUrl!,
      address: chain.address,
      model: this.config.model,
      sign: (m) => chain.signMessage!(m),
      handle: (r) => api.handler.handle(r),
      apiSecret: this.config.apiSecret,
      logger: this.#options.logger,
    });
    this.#relay.start();
  }

  /**
   * Runs the start order. Throws (after tearing down what started) when a phase fails or
   * `options.signal` aborts.
   */
  async start({ signal = new AbortController().signal }: AbortOptions = {}): Promise<void> {
    if (this.#state !== "idle") {
      throw new UnavailableError("NODE_STATE", `the node cannot start from state ${this.#state}`, {
        hint: "create a new node to start again",
      });
    }
    this.#state = "starting";
    this.#startedAt = performance.now();
    const log = this.#log;
    try {
      if (this.#options.lockDataDir ?? !this.#options.parts) {
        // One process per data dir (docs/operations.md): a second one fails here, before anything.
        this.#lock = await lockDataDir(this.config.dataDir, { identityPath: this.config.identityPath });
        log.info("data dir locked", { dataDir: this.#lock.dir, pid: this.#lock.pid });
        if (this.#lock.writableByOthers) {
          log.warn(
            "the data dir is writable by other users, who could replace the node's files; chmod 700 it",
            {
              dataDir: this.#lock.dir,
            },
          );
        }
      }
      this.#doing = "starting the HTTP API";
      this.#api = new ApiServer({
        generator: nodeGenerator({
          model: this.config.model,
          parts: () => this.#parts,
          online: () => this.#state === "online",
          logger: this.#log,
        }),
        metrics: this.metrics,
        status: this,
        logger: this.#options.logger,
        apiSecret: this.config.apiSecret,
        corsOrigins: this.config.apiCorsOrigins,
        host: this.config.apiHost,
        port: this.config.apiPort,
        maxConcurrent: this.config.apiMaxConcurrent,
        requestTimeoutMs: this.config.apiTimeout * 1000,
        ...this.#options.api,
      });
      await this.#api.start();

      const t = performance.now();
      this.#doing = "building the parts (wallet, peer identity)";
      const parts = await this.#buildParts({ signal });
      this.#parts = parts;
      this.#registerGauges(parts);
      log.info("parts ready", {
        model: this.config.model,
        wallet: parts.chain?.address ?? "none (offline mode)",
        ms: since(t),
      });

      if (parts.chain) {
        await this.#phase("chain preflight", "checking the chain", () => parts.chain!.preflight({ signal }));
      } else log.info("offline mode: no chain registration, heartbeat, rewards or Oracle reports");

      await this.#phase("swarm started", "starting the swarm", async () => {
        this.#started.swarm = true;
        await parts.swarm.start({ signal });
      }, () => {
        const st = parts.swarm.status();
        return { peerId: st.peerId, addrs: st.addrs };
      });

      this.#doing = "choosing blocks";
      const total = await parts.runtime.totalBlocks({ signal });
      const span = await parts.swarm.chooseSpan(total, { signal });
      checkSpan(span, total);
      this.#span = span;
      log.info("blocks chosen", { start: span.start, end: span.end, totalBlocks: total });

      await this.#phase("announced joining", "announcing joining", async () => {
        this.#announced = true;
        await parts.swarm.announce("joining", span, { signal });
      });
      await this.#phase("blocks loaded", `loading blocks ${span.start}:${span.end}`, async () => {
        this.#started.runtime = true;
        await parts.runtime.load(span, { signal });
      }, () => ({ start: span.start, end: span.end, weights: this.config.weights }));
      let throughput = 0;
      await this.#phase("throughput ready", "measuring throughput", async () => {
        throughput = await parts.runtime.throughput({ signal });
      }, () => ({ tokensPerSecond: Math.round(throughput * 10) / 10 }));
      await parts.swarm.serve(throughput);
      await this.#phase(
        "announced online",
        "announcing online",
        () => parts.swarm.announce("online", span, { signal }),
      );

      if (parts.chain) {
        this.#started.chain = true;
        try {
          await this.#phase(
            "chain agent started (registration checked, heartbeat and reward loops)",
            "starting the chain agent",
            () => parts.chain!.start({ signal }),
            () => ({ ...parts.chain!.status() }),
          );
        } catch (err) {
          if (err instanceof ConfigError || signal.aborted) throw err;
          // The swarm still gets served; the Oracle will refuse reports until registration succeeds.
          log.warn("chain agent failed to start; serving the swarm anyway", {
            error: errorMessage(err),
            hint: err instanceof PlumiseError ? err.hint : undefined,
          });
        }
      }
      if (parts.reporter) {
        await this.#phase("reporter started", "starting the reporter", async () => {
          this.#started.reporter = true;
          await parts.reporter!.start();
        }, () => ({ oracle: this.config.oracleUrl, intervalSeconds: this.config.reportInterval }));
      }

      if (signal.aborted) throw signal.reason;
      this.#doing = undefined;
      if (this.config.gatewayRelayUrl) this.#startGatewayRelay(parts, this.#api!);
      this.#state = "online";
      this.#msToOnline = since(this.#startedAt);
      this.metrics.set("plumise_node_online", "1 while the node is online", 1);
      log.info("node online", {
        span: `${span.start}:${span.end}`,
        api: this.#api!.url,
        msSinceStart: this.#msToOnline,
      });
    } catch (err) {
      this.#state = "failed";
      log.error("start failed; stopping what was started", { error: errorMessage(err) });
      await this.#teardown(0);
      this.#state = "failed";
      throw err;
    }
  }

  /**
   * Graceful stop: offline announcement, in-flight work within `graceMs` (default: the config's
   * `SHUTDOWN_GRACE`), final report, reverse order. Idempotent; never throws.
   */
  stop(graceMs: number = this.config.shutdownGrace * 1000): Promise<void> {
    if (this.#state === "idle") {
      this.#state = "stopped";
      return Promise.resolve();
    }
    this.#stopping ??= (async () => {
      this.#state = "stopping";
      const t = performance.now();
      this.#log.info("stopping", { graceMs });
      await this.#teardown(graceMs);
      this.#state = "stopped";
      this.#log.info("node stopped", { ms: since(t) });
    })();
    return this.#stopping;
  }

  async #teardown(graceMs: number): Promise<void> {
    try {
      await this.#teardownParts(graceMs);
    } finally {
      const lock = this.#lock;
      this.#lock = undefined;
      await lock?.release();
    }
  }

  async #teardownParts(graceMs: number): Promise<void> {
    const p = this.#parts;
    const stepMs = this.#options.stopStepTimeoutMs ?? 5000;
    this.metrics.set("plumise_node_online", "1 while the node is online", 0);
    const step = async (
      name: string,
      fn: (options: { signal: AbortSignal }) => Promise<void>,
      ms = stepMs,
    ) => {
      try {
        await withTimeout(ms, (signal) => fn({ signal }));
        this.#log.info(name);
      } catch (err) {
        this.#log.warn(`${name} failed`, { error: errorMessage(err) });
      }
    };
    const api = this.#api;
    if (!p) {
      // the start failed before the parts existed: only the API runs
      if (api) await step("HTTP API stopped", () => api.stop(graceMs), graceMs + stepMs);
      return;
    }
    if (this.#announced && this.span) {
      const span = this.span;
      this.#announced = false;
      await step("announced offline", (s) => p.swarm.announce("offline", span, s));
    }
    const relay = this.#relay;
    this.#relay = undefined;
    await Promise.all([
      api ? step("HTTP API stopped", () => api.stop(graceMs), graceMs + stepMs) : undefined,
      this.#started.swarm ? step("swarm drained", () => p.swarm.drain(graceMs), graceMs + stepMs) : undefined,
    ]);
    // relayed requests ran through the API, which let them finish within the grace period
    if (relay) await step("gateway relay closed", () => relay.stop());
    if (p.closeGenerator) await step("generation client closed", () => p.closeGenerator!());
    if (this.#started.reporter && p.reporter) {
      this.#started.reporter = false;
      // the final report has 5 s of its own (OracleReporter's finalTimeoutMs) and a state file to
      // write after it: a step of the same 5 s gave up first, and the process exited mid-write
      await step("reporter stopped after its final report", (s) => p.reporter!.stop(true, s), stepMs + 3000);
    }
    if (this.#started.chain && p.chain) {
      this.#started.chain = false;
      await step("chain loops stopped", () => p.chain!.stop());
    }
    if (this.#started.runtime) {
      this.#started.runtime = false;
      await step("blocks unloaded", () => p.runtime.stop());
    }
    if (this.#started.swarm) {
      this.#started.swarm = false;
      await step("swarm stopped", () => p.swarm.stop());
    }
  }

  /** Runs one start phase: `doing` is shown by /health meanwhile, `name` is logged when it is done. */
  async #phase(
    name: string,
    doing: string,
    fn: () => Promise<void>,
    fields?: () => Record<string, unknown>,
  ): Promise<void> {
    this.#doing = doing;
    const t = performance.now();
    await fn();
    this.#log.info(name, { ...fields?.(), ms: since(t) });
  }

  async #buildParts({ signal }: { signal: AbortSignal }): Promise<NodeParts> {
    const metrics = this.metrics;
    const logger = this.#options.logger ?? silentLogger;
    if (this.#options.parts) {
      return await this.#options.parts({ config: this.config, metrics, logger, signal });
    }
    // Lazy: the real parts pull in onnxruntime, libp2p and ethers.
    const { createNodeParts } = await import("./node_parts.ts");
    return await createNodeParts({ config: this.config, metrics, logger, signal });
  }

  #registerGauges(parts: NodeParts): void {
    const m = this.metrics;
    m.gauge("plumise_sessions_open", "Inference sessions open on this node's span", () => {
      return parts.runtime.figures()?.openSessions ?? 0;
    });
    m.gauge("plumise_cache_tokens", "KV cache tokens of this node's span by state", () => {
      const f = parts.runtime.figures();
      if (!f) return [];
      return [[{ state: "used" }, f.cacheTokensTotal - f.cacheTokensLeft], [
        { state: "free" },
        f.cacheTokensLeft,
      ]];
    });
    m.gauge("plumise_swarm_servers", "Online servers of this model in the swarm table", () => {
      return parts.swarm.status().coverage?.servers ?? 0;
    });
    m.gauge("plumise_swarm_blocks_covered", "Blocks of the model covered by online servers", () => {
      return parts.swarm.status().coverage?.coveredBlocks ?? 0;
    });
  }
}

/** Creates the node for `config` (nothing starts before `start()`). */
export function createNode(config: Config, options: NodeOptions = {}): PlumiseNode {
  return new PlumiseNode(config, options);
}

/**
 * What `plumise serve` runs: start, serve until `options.signal` aborts (the CLI's first SIGINT/SIGTERM;
 * a second one exits at once in the CLI), then stop within `options.graceMs` (default: the config's
 * `SHUTDOWN_GRACE`). A start interrupted by the signal is a clean stop, not an error.
 */
export async function runNode(
  node: PlumiseNode,
  { signal, graceMs = node.config.shutdownGrace * 1000 }: { signal: AbortSignal; graceMs?: number },
): Promise<void> {
  try {
    await node.start({ signal });
  } catch (err) {
    if (signal.aborted) return;
    throw err;
  }
  await untilAborted(signal);
  await node.stop(graceMs);
}

function checkSpan(span: NodeSpan, total: number): void {
  if (
    !Number.isInteger(span.start) || !Number.isInteger(span.end) || span.start < 0 || span.end > total ||
    span.start >= span.end
  ) {
    throw new ConfigError(
      "BAD_SPAN",
      `span ${span.start}:${span.end} is not inside the model's ${total} blocks`,
      {
        hint: `choose --block-indices a:b with 0 ≤ a < b ≤ ${total}`,
      },
    );
  }
}

function since(t: number): number {
  return Math.round(performance.now() - t);
}

function safe(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (err) {
    return { error: errorMessage(err) };
  }
}
