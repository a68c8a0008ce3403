/**
 * The blocks of the node: the onnxruntime `BlockRuntime` for the chosen span as a `NodeRuntime`,
 * plus the throughput figures announced in the swarm record — measured once per machine, model,
 * weight format and span size, and cached in the data directory so a restart goes online fast.
 * @module
 */
import type { Config } from "../config/types.ts";
import { ConfigError, errorMessage, PlumiseError, RuntimeError } from "../errors.ts";
import { resolveCheckpoint } from "../runtime/checkpoint.ts";
import { createBlockRuntime, type OnnxBlockRuntimeOptions } from "../runtime/onnx_block_runtime.ts";
import type { BlockRuntime, HiddenStates } from "../runtime/types.ts";
import type { ThroughputFigures } from "../swarm/swarm_server.ts";
import type { Logger } from "../util/logger.ts";
import type { NodeRuntime, NodeSpan } from "./types.ts";
import { modelSource } from "../runtime/model_source.ts";
import { measureSpanSpeed, positionsOf, type SpanSpeed } from "./span_speed.ts";
import { writeTextAtomic } from "../util/write_text_atomic.ts";

export interface RuntimePart extends NodeRuntime {
  /** The loaded runtime (throws before `load`). */
  blocks(): BlockRuntime;
  /** Figures from the last `throughput()` call. */
  figures(): ReturnType<NodeRuntime["figures"]>;
  announced(): ThroughputFigures;
  /**
   * Loads the blocks of `newSpan` beside the current ones and makes them current (rebalancing);
   * returns a function that unloads the previous blocks once nothing serves them any more.
   */
  swap(newSpan: NodeSpan, options: { signal: AbortSignal }): Promise<() => Promise<void>>;
  /**
   * Measures the loaded span now (ignoring the cache and `config.throughput`), stores the figures
   * in the cache that `throughput()` reads, and returns them with the speeds they come from.
   */
  measure(options: { signal: AbortSignal }): Promise<SpanMeasurement>;
}

/** A fresh measurement: the figures to announce and the speeds behind them. */
export interface SpanMeasurement {
  readonly figures: ThroughputFigures;
  readonly speed: SpanSpeed;
  /** Where the figures were cached (undefined when the cache could not be written)… */
  readonly cachedAt?: string;
  /** …and why not. */
  readonly cacheError?: string;
}

/** The throughput cache's words for where the compute threads run: `pinned 0,1` (caller first) or `unpinned`. */
export function pinnedKey(cpus: readonly number[] | undefined): string {
  return cpus?.length ? `pinned ${cpus.join(",")}` : "unpinned";
}

/**
 * The runtime part; `onBatch` hears the batches of steps its runtimes run (for the metrics).
 */
export function createRuntimePart(
  config: Config,
  logger: Logger,
  onBatch?: OnnxBlockRuntimeOptions["onBatch"],
): RuntimePart {
  const log = logger.child({ part: "runtime" });
  let runtime: BlockRuntime | undefined;
  let announced: ThroughputFigures = { throughput: 0, inferenceRps: 0, forwardRps: 0, networkRps: 0 };
  const source = modelSource(config);
  const open = (
    s: NodeSpan,
    { signal, directPort = config.directPort }: { signal: AbortSignal; directPort?: number },
  ) =>
    createBlockRuntime({
      ...source,
      start: s.start,
      end: s.end,
      weights: config.weights,
      cacheTokens: config.cacheTokens,
      threads: config.threads,
      pinning: config.cpuPinning,
      logger: log,
      signal,
      onBatch,
      direct: directPort < 0 ? undefined : { host: config.p2pHost, port: directPort },
    });
  const started = async (rt: BlockRuntime) => {
    try {
      await rt.start();
      return rt;
    } catch (err) {
      await rt.stop().catch(() => {});
      throw err;
    }
  };
  const cachePath = () => `${config.dataDir}/throughput.json`;
  /** The throughput cache's key of the span `rt` has loaded. */
  const cacheKey = (rt: BlockRuntime, info = rt.info()) =>
    [
      // v4: the decode rate is the slower of hot and pipelined steps (span_speed.ts); pinned threads
      // run at another speed, so where they were pinned is part of the key: what the runtime did,
      // not the CPU_PINNING setting (under "auto" that depends on THREADS and the CPUs allowed)
      "v4",
      config.model,
      config.revision,
      config.weights,
      info.end - info.start,
      config.threads,
      pinnedKey(info.pinnedCpus),
      Deno.build.arch,
    ]
      .join("|");

  return {
    async totalBlocks({ signal }) {
      const ckpt = await resolveCheckpoint(source, { logger: log, signal });
      return ckpt.modelConfig.numLayers;
    },
    async load(s, options) {
      runtime = open(s, options);
      await runtime.start();
    },
    async swap(s, { signal }) {
      let next: BlockRuntime;
      let moved = false;
      try {
        next = await started(open(s, { signal }));
      } catch (err) {
        // the blocks being replaced still hold the direct port: take any free one until they let go
        if (!(err instanceof PlumiseError && err.code === "DIRECT_PORT_IN_USE") || config.directPort <= 0) {
          throw err;
        }
        next = await started(open(s, { signal, directPort: 0 }));
        moved = true;
        log.info("direct path on another port until the old blocks let go of it", {
          configured: config.directPort,
          port: next.info().directPort,
        });
      }
      const previous = runtime;
      runtime = next;
      log.info("blocks loaded for the new span", { span: `${s.start}:${s.end}` });
      return async () => {
        await previous?.stop();
        if (!moved || runtime !== next || !next.rebindDirect) return;
        // the old blocks held DIRECT_PORT: now it is free, the direct path goes back to it
        try {
          const port = await next.rebindDirect(config.directPort);
          log.info("direct path back on its port", { port });
        } catch (err) {
          log.warn("direct path stays on another port until restart", {
            configured: config.directPort,
            port: next.info().directPort,
            error: errorMessage(err),
          });
        }
      };
    },
    async throughput(options) {
      const rt = this.blocks();
      if (config.throughput !== undefined) {
        announced = {
          throughput: config.throughput,
          inferenceRps: config.throughput,
          forwardRps: config.throughput,
          networkRps: throughputFigures({
            spanBlocks: 1,
            hiddenSize: rt.info().hiddenSize,
            decodeStepsPerSecond: 0,
            prefillTokensPerSecond: 0,
          }).networkRps,
        };
        return config.throughput;
      }
      const key = cacheKey(rt);
      const cached = await readCache(cachePath()).then((c) => c[key]).catch(() => undefined);
      if (cached) {
        announced = cached;
        // said at info: a restart that does not measure again should say why
        log.info("throughput from cache (delete throughput.json in the data dir to measure again)", {
          ...cached,
        });
        return cached.throughput;
      }
      return (await this.measure(options)).figures.throughput;
    },
    async measure(options) {
      const rt = this.blocks();
      const key = cacheKey(rt);
      const speed = await measureSpan(rt, config.cacheTokens, options);
      const info = rt.info();
      const figures = throughputFigures({
        spanBlocks: info.end - info.start,
        hiddenSize: info.hiddenSize,
        decodeStepsPerSecond: speed.decodeStepsPerSecond,
        prefillTokensPerSecond: speed.prefillTokensPerSecond,
      });
      if (config.throughput === undefined) announced = figures;
      log.info("span speed measured", {
        hotStepMs: round2(speed.hotStepMs),
        pipelinedStepMs: round2(speed.pipelinedStepMs),
        idlePenalty: round2(speed.idlePenalty),
        throughput: figures.throughput,
      });
      const all = await readCache(cachePath()).catch(() => ({}));
      try {
        await Deno.mkdir(config.dataDir, { recursive: true, mode: 0o700 }); // as serve makes it: it holds keys
        // atomic, so a reader (another node starting) never sees half a file
        await writeTextAtomic(cachePath(), JSON.stringify({ ...all, [key]: figures }, null, 2));
        return { figures, speed, cachedAt: cachePath() };
      } catch (err) {
        log.warn("cannot cache the throughput", { path: cachePath(), error: errorMessage(err) });
        return { figures, speed, cacheError: errorMessage(err) };
      }
    },
    figures() {
      if (!runtime) return undefined;
      try {
        const i = runtime.info();
        return {
          openSessions: i.openSessions,
          cacheTokensTotal: i.cacheTokensTotal,
          cacheTokensLeft: i.cacheTokensLeft,
        };
      } catch {
        return undefined;
      }
    },
    announced: () => announced,
    blocks() {
      if (!runtime) {
        throw new RuntimeError("NOT_RUNNING", "the blocks are not loaded yet", { hint: "call load() first" });
      }
      return runtime;
    },
    async stop() {
      await runtime?.stop();
    },
  };
}

async function readCache(path: string): Promise<Record<string, ThroughputFigures>> {
  const parsed = JSON.parse(await Deno.readTextFile(path));
  return parsed && typeof parsed === "object" ? parsed : {};
}

/** Measures the span through one session of the runtime (see span_speed.ts). */
async function measureSpan(
  rt: BlockRuntime,
  cacheTokens: number,
  { signal }: { signal: AbortSignal },
): Promise<SpanSpeed> {
  const info = rt.info();
  const h = info.hiddenSize;
  const hidden = (t: number): HiddenStates => {
    const data = new Float32Array(t * h);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 0.5;
    return { data, shape: [1, t, h] };
  };
  const maxLength = positionsOf() + 1;
  const need = maxLength * (info.end - info.start);
  if (info.cacheTokensLeft < need) {
    throw new ConfigError(
      "CACHE_TOO_SMALL",
      `measuring the span's speed needs ${need} cache tokens (${maxLength} positions × ${
        info.end - info.start
      } blocks), only ${info.cacheTokensLeft} are free (CACHE_TOKENS=${cacheTokens})`,
      {
        hint:
          `raise CACHE_TOKENS to at least ${need} (0 derives it from memory), or set THROUGHPUT to skip measuring`,
      },
    );
  }
  const session = await rt.openSession({
    start: info.start,
    end: info.end,
    maxLength,
    batch: 1,
    signal,
  });
  try {
    const one = hidden(1);
    return await measureSpanSpeed({
      prefill: async (tokens, { signal }) => void await session.step(hidden(tokens), { signal }),
      decode: async ({ signal }) => void await session.step(one, { signal }),
    }, { signal });
  } finally {
    await session.close();
  }
}

/**
 * The link rate assumed for the network estimate when none is measured (Petals' fallback when its
 * speed test fails): 100 Mbit/s.
 */
export const ASSUMED_NETWORK_BITS_PER_SECOND = 100e6;

export interface ThroughputInputs {
  readonly spanBlocks: number;
  readonly hiddenSize: number;
  /** Decode steps per second through the whole span (one token each). */
  readonly decodeStepsPerSecond: number;
  /** Prefill tokens per second through the whole span. */
  readonly prefillTokensPerSecond: number;
  /** Link rate; default `ASSUMED_NETWORK_BITS_PER_SECOND`. */
  readonly networkBitsPerSecond?: number;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * The figures announced in the swarm record. Per-block rates are the span's rates × its block
 * count (routing divides by them per block); `networkRps` is how many tokens' hidden states (one
 * f16 vector of `hiddenSize`, as in Petals) the link carries per second; `throughput` is the decode
 * rate the server sustains for its whole span, capped by that network rate.
 */
export function throughputFigures(i: ThroughputInputs): ThroughputFigures {
  const networkRps = (i.networkBitsPerSecond ?? ASSUMED_NETWORK_BITS_PER_SECOND) / (i.hiddenSize * 16);
  return {
    throughput: round2(Math.min(i.decodeStepsPerSecond, networkRps)),
    inferenceRps: round2(i.decodeStepsPerSecond * i.spanBlocks),
    forwardRps: round2(i.prefillTokensPerSecond * i.spanBlocks),
    networkRps: round2(networkRps),
  };
}
