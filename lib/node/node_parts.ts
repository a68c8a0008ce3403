/**
 * Builds the real parts of a node from the resolved config: runtime (onnxruntime blocks for the
 * chosen span), swarm (`SwarmServer` feeding the shared metrics), chain (`ChainAgent`) and
 * reporter (`OracleReporter` over the same metrics), and the generator behind the HTTP API: the
 * swarm client connected over loopback to this node's own server (so its own span is served by
 * its swarm server and counted once, like any client's work), with the tokenizer and the client
 * head loaded on the first request. Loaded lazily by node.ts so `--help`, `status` and most tests
 * never load native addons.
 * @module
 */
import { createClientHead } from "../runtime/onnx_client_head.ts";
import { loadTokenizer } from "../runtime/hf_tokenizer.ts";
import { connectSwarm } from "../swarm/client/connect_swarm.ts";
import { createChainPart, createReporterPart } from "./chain_part.ts";
import { LazyGenerator } from "./lazy_generator.ts";
import { createRuntimePart } from "./runtime_part.ts";
import { SwarmGenerator } from "./swarm_generator.ts";
import { createSwarmPart } from "./swarm_part.ts";
import type { NodeParts, NodePartsContext } from "./types.ts";
import { modelSource } from "../runtime/model_source.ts";

export async function createNodeParts(ctx: NodePartsContext): Promise<NodeParts> {
  const { config, metrics, logger } = ctx;
  const chain = config.offline ? undefined : await createChainPart(config, metrics, logger);
  const reporter = chain ? createReporterPart(config, chain, metrics, logger) : undefined;
  const runtime = createRuntimePart(
    config,
    logger,
    (e) => metrics.observeBatches(e.sizes, e.waitsMs, e.windows),
  );
  const swarm = await createSwarmPart({
    config,
    metrics,
    logger,
    runtime: () => runtime.blocks(),
    figures: () => runtime.announced(),
    move: (span, options) => runtime.swap(span, options),
    wallet: chain?.address,
  });
  const source = modelSource(config);
  const createdAt = Math.floor(Date.now() / 1000);
  const generator = new LazyGenerator({
    model: config.model,
    createdAt,
    async build({ signal }) {
      const log = logger.child({ part: "generation" });
      const t = performance.now();
      // the head first: where the machine lacks the memory for it, it refuses at once (and a
      // request retried after that refusal parses no tokenizer)
      const head = createClientHead({
        ...source,
        weights: config.weights,
        threads: config.threads,
        pinning: config.cpuPinning,
        logger: log,
        signal,
      });
      await head.start();
      try {
        const tokenizer = await loadTokenizer(source, { logger: log, signal });
        const own = swarm.status().addrs ?? [];
        const client = await connectSwarm({
          model: config.model,
          initialPeers: [...own.slice(0, 1), ...config.initialPeers],
          head,
          tokenizer,
          logger: log,
          signal,
          holePunch: config.holePunch,
          natScope: config.natScope,
        });
        log.info("generation client ready", { ms: Math.round(performance.now() - t) });
        return {
          generator: new SwarmGenerator({
            model: config.model,
            tokenizer,
            head,
            createdAt,
            // the servers refuse longer sessions (TOO_LONG): the API answers 400 or caps the tokens
            maxContextTokens: head.info.maxLength,
            openSession: (maxLength) => {
              const lease = client.leaseSession({ maxLength });
              metrics.inc(
                "plumise_generation_sessions_total",
                "Swarm sessions the HTTP API's generations used: opened for them, or reused from an earlier one",
                1,
                { session: lease.reused ? "reused" : "opened" },
              );
              return Promise.resolve(lease);
            },
          }),
          close: async () => {
            await client.stop();
            await head.stop();
          },
        };
      } catch (err) {
        await head.stop().catch(() => {});
        throw err;
      }
    },
  });
  return { runtime, swarm, chain, reporter, generator, closeGenerator: () => generator.close() };
}
