/**
 * `deno task bench:swarm`: tokens/s of greedy generation through a 3-server loopback swarm
 * (three server processes, each serving a third of the blocks with the onnx runtime, the client
 * running the head and the swarm client) vs the same model in one process (runtime + head, no
 * swarm), measured in one run on the same generated checkpoint: after a warm-up of each, the two
 * alternate `--runs` times (so both see the same machine load; each run starts with the next variant,
 * odd runs go backwards, and each generation starts after a 250 ms pause)
 * and the medians are reported.
 *
 *   deno task bench:swarm [--json] [--runs 5] [--tokens 32] [--layers 12] [--heads 16] [--head-dim 64] [--threads 2]
 *     [--breakdown] [--no-push-relay] [--no-libp2p] [--no-floor] [--no-local-unpinned] [--no-swarm-unpinned]
 *     [--no-sealed]
 *     [--client-latency-ms 0]
 *
 * Every runtime pins its compute threads as `plumise` does by default (`CPU_PINNING` auto, see
 * lib/runtime/_cpu_affinity.ts). So that this cannot flatter the ratio by slowing the single
 * process, the single process also runs with nothing pinned (`local_unpinned`, alternated like the
 * rest; `--no-local-unpinned` skips it), and `local_tok_s`, the baseline of every ratio, is the
 * faster of the two (`local_pinning` says which; `local_pinned_tok_s`, `local_unpinned_tok_s`).
 * What pinning gains the swarm: three more servers with nothing pinned and a client with an
 * unpinned head (`swarm_unpinned_tok_s`, `ratio_unpinned`, and `pinned_vs_unpinned` = swarm ÷
 * that; `--no-swarm-unpinned` skips them).
 *
 * A third variant, alternated in the same run, is the floor: the same three spans in three
 * processes taking turns over pipes with no protocol at all (scripts/pipe_span_process.ts), so the
 * report separates what three processes sharing this machine's cores cost (`ratio_floor`) from
 * what the swarm adds on top (`swarm_vs_floor`).
 *
 * `--json` prints `{"swarm_tok_s", "local_tok_s", "ratio", "servers", "tokens", ...}`; the swarm
 * figures are those of a client as `plumise generate` runs it: steps on the servers' direct paths,
 * pushed server to server where that pays (`push: "auto"`, `pushPays`; `swarm_push_share` says
 * how many of its hops were pushed). Other clients on the same servers, alternated in the same run:
 * `swarm_push_tok_s` / `ratio_push` always push and `swarm_relay_tok_s` / `ratio_relay` never do,
 * with `push_vs_relay` and its paired median (`--no-push-relay` skips both); `swarm_libp2p_tok_s`
 * / `ratio_libp2p` keep the libp2p streams (`--no-libp2p` skips it); `swarm_sealed_tok_s` /
 * `ratio_sealed` seal every frame although all connections are on loopback (`plainLoopback:
 * false`, lib/wire/direct_channel.ts), with `plain_vs_sealed` and its paired median
 * (`--no-sealed` skips it). `--client-latency-ms N` puts
 * the swarm clients N ms (one way) away from every server, the servers staying on loopback among
 * themselves (scripts/delayed_transport.ts): a client at home and servers in one data centre.
 * `floor_tok_s`, `ratio_floor` and `swarm_vs_floor` are the floor's (`--no-floor` skips it). `--breakdown` adds
 * `breakdown`: medians per decode token (ms) of the head's embed and logits calls and of the block
 * step (the whole model locally; all hops through the swarm), and per hop the server's compute time
 * and the client's round trip, over the measured runs.
 * @module
 */
import { parseArgs } from "node:util";
import { createBlockRuntime, createClientHead, loadTokenizer } from "../lib/runtime/mod.ts";
import type { BlockRuntime, ClientHead } from "../lib/runtime/types.ts";
import type { CpuPinning } from "../lib/util/cpu_list.ts";
import { type ConnectedSwarmClient, connectSwarm } from "../lib/swarm/client/connect_swarm.ts";
import { generateText, type GenerationResult, type StepSession } from "../lib/swarm/client/generate_text.ts";
import { describeRoute } from "../lib/swarm/client/route_inference.ts";
import { type SpawnedFixture, spawnFixtureServer } from "../tests/helpers/swarm_client_fixture.ts";
import { type PipeSpan, spawnPipeSpan } from "./pipe_span_process.ts";
import { delayedTransport } from "./delayed_transport.ts";
import {
  argsOrExit,
  GENERATION_BENCH_OPTIONS,
  generationBenchArgs,
  makeBenchModel,
  median,
  stepSessionOver,
  thirds,
  tokensPerSecond,
} from "./generation_bench.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    ...GENERATION_BENCH_OPTIONS,
    runs: { type: "string", default: "5" },
    breakdown: { type: "boolean", default: false },
    "no-push-relay": { type: "boolean", default: false },
    "no-libp2p": { type: "boolean", default: false },
    "no-floor": { type: "boolean", default: false },
    "no-local-unpinned": { type: "boolean", default: false },
    "no-swarm-unpinned": { type: "boolean", default: false },
    "no-sealed": { type: "boolean", default: false },
    "client-latency-ms": { type: "string", default: "0" },
  },
});
const clientLatencyMs = Number(a["client-latency-ms"]);
const n = argsOrExit(() => {
  const n = generationBenchArgs(a);
  if (!(Number.isFinite(clientLatencyMs) && clientLatencyMs >= 0)) {
    throw new RangeError(`--client-latency-ms must be a number ≥ 0, got ${a["client-latency-ms"]}`);
  }
  return n;
});
const { tokens, layers, threads, runs } = n;
const log = (msg: string) => a.json || console.error(msg);
/** The pause before each measured generation (see the run loop). */
const SETTLE_MS = 250;

const ck = await makeBenchModel(n);
const model = ck.dir;
const hiddenSize = Number(ck.config.hidden_size);
log(
  `model: BLOOM-style, ${layers} blocks, hidden ${hiddenSize}, ${tokens} new tokens, ${threads} threads per runtime`,
);
const options = { maxNewTokens: tokens, eosTokenIds: [] as number[] };

/** Decode-token timings (T = 1 calls only) while `timing` is on; key → ms samples. */
const timings: Record<string, number[]> = {};
let timing = false;
/** The measured runs are under way (not the warm-up). */
let measuring = false;
/** Which variant is running: the head's timings are keyed by it. */
let variant = "local";
const timed = async <T>(key: string, tokens: number, f: () => Promise<T>): Promise<T> => {
  if (!timing || tokens !== 1) return await f();
  const t0 = performance.now();
  const r = await f();
  (timings[key] ??= []).push(performance.now() - t0);
  return r;
};
/** A client head (threads pinned as `pinning` says) whose decode calls are timed under the running variant. */
const timedHead = (pinning: CpuPinning): ClientHead => {
  const raw = createClientHead({ model, threads, pinning });
  return {
    get info() {
      return raw.info;
    },
    start: () => raw.start(),
    stop: () => raw.stop(),
    embed: (ids, o) => timed(`${variant} embed`, ids.shape[1], () => raw.embed(ids, o)),
    logits: (last, o) => timed(`${variant} logits`, 1, () => raw.logits(last, o)),
  };
};
/** The head of every variant but one: pinned as the runtime's default pins it (CPU_PINNING auto). */
const head = timedHead("auto");
/** The head with nothing pinned: of `local_unpinned` (so the baseline is the faster of the two) and `swarm_unpinned`. */
const headOff = a["no-local-unpinned"] && a["no-swarm-unpinned"] ? undefined : timedHead("off");
/** A step session whose decode steps are timed under `key`. */
const timedSession = (key: string, s: StepSession): StepSession => ({
  get position() {
    return s.position;
  },
  maxLength: s.maxLength,
  step: (x, o) => timed(key, x.shape[1], () => s.step(x, o)),
});
const tokenizer = await loadTokenizer({ model });
await head.start();
await headOff?.start();
const servers: SpawnedFixture[] = [], serversOff: SpawnedFixture[] = [];
const pipes: PipeSpan[] = [];
try {
  // --- one process: the whole model + head, no swarm
  const local = createBlockRuntime({ model, start: 0, end: layers, weights: "fp32", threads });
  await local.start();
  const localOff = a["no-local-unpinned"]
    ? undefined
    : createBlockRuntime({ model, start: 0, end: layers, weights: "fp32", threads, pinning: "off" });
  await localOff?.start();
  const runLocal = async (name: string, rt: BlockRuntime, h: ClientHead) => {
    variant = name;
    // opening the session counts, as it does for the swarm (whose first step opens its spans)
    const t0 = performance.now();
    const session = await rt.openSession({ start: 0, end: layers, maxLength: 512, batch: 1 });
    const openMs = performance.now() - t0;
    try {
      const r = await generateText(
        { head: h, tokenizer, session: timedSession(`${name}_blocks`, session) },
        a.prompt!,
        options,
      )
        .complete();
      return { ...r, prefillMs: r.prefillMs + openMs };
    } finally {
      await session.close();
    }
  };
  // reference output of the whole model on the prompt's embeddings (correctness check of the swarm)
  const ids = tokenizer.encode(a.prompt!);
  const x = await head.embed({ data: Int32Array.from(ids), shape: [1, ids.length] });
  const refOut = await local.forward(0, layers, x);

  // --- three server processes on loopback, each set is its own swarm (the servers know only each other)
  const cuts = thirds(layers);
  const spawnSwarm = async (into: SpawnedFixture[], pinning: CpuPinning) => {
    for (let i = 0; i < 3; i++) {
      into.push(
        await spawnFixtureServer({
          model,
          start: cuts[i],
          end: cuts[i + 1],
          numBlocks: layers,
          hiddenSize,
          checkpointDir: model,
          threads,
          pinning,
        }),
      );
    }
    await Promise.all(into.map((s) => s.addRecords(into.map((x) => x.signed))));
  };
  await spawnSwarm(servers, "auto");
  // the same swarm with nothing pinned (CPU_PINNING=off everywhere): what pinning gains
  if (!a["no-swarm-unpinned"]) await spawnSwarm(serversOff, "off");
  // the floor: the same three spans in three processes taking turns over pipes, no protocol
  if (!a["no-floor"]) {
    for (let i = 0; i < 3; i++) {
      pipes.push(await spawnPipeSpan({ model, start: cuts[i], end: cuts[i + 1], threads }));
    }
  }
  const runPipes = async () => {
    variant = "floor";
    const session = stepSessionOver(async (h, fresh) => {
      let y = h;
      for (const p of pipes) y = await p.step(y, fresh);
      return y;
    });
    return await generateText(
      { head, tokenizer, session: timedSession("floor_blocks", session) },
      a.prompt!,
      options,
    )
      .complete();
  };
  /** The swarm clients compared, on the same servers: as `plumise generate` runs, always / never pushing, over libp2p. */
  const variants: {
    name: string;
    direct: boolean;
    push: boolean | "auto";
    unpinned?: boolean;
    sealed?: boolean;
  }[] = [
    { name: "swarm", direct: true, push: "auto" },
    ...(a["no-sealed"] ? [] : [{ name: "swarm_sealed", direct: true, push: "auto" as const, sealed: true }]),
    ...(serversOff.length
      ? [{ name: "swarm_unpinned", direct: true, push: "auto" as const, unpinned: true }]
      : []),
    ...(a["no-push-relay"] ? [] : [
      { name: "swarm_push", direct: true, push: true },
      { name: "swarm_relay", direct: true, push: false },
    ]),
    ...(a["no-libp2p"] ? [] : [{ name: "swarm_libp2p", direct: false, push: false }]),
  ];
  /** Hops of the default client's decode steps, and how many of them were pushed. */
  const hops = { all: 0, pushed: 0 };
  const clients = new Map<string, ConnectedSwarmClient>();
  // the first swarm client created in a process ran slower than identical ones created after it
  // (docs/benchmarks.md, bench:swarm's method; cause unknown): a throwaway client is created first,
  // so that no measured one pays it (it runs one generation and stays connected until the end, like
  // the measured ones)
  const throwaway = await connectSwarm({
    model,
    initialPeers: [servers[0].addrs[0]],
    head,
    tokenizer,
    numBlocks: layers,
    tableRefreshMs: 0,
  });
  clients.set("throwaway", throwaway);
  for (const v of variants) {
    clients.set(
      v.name,
      await connectSwarm({
        model,
        initialPeers: [(v.unpinned ? serversOff : servers)[0].addrs[0]],
        head: v.unpinned ? headOff! : head,
        tokenizer,
        numBlocks: layers,
        tableRefreshMs: 0,
        direct: v.direct,
        push: v.push,
        plainLoopback: !v.sealed,
        ...(clientLatencyMs > 0 ? { wrapTransport: (t) => delayedTransport(t, clientLatencyMs) } : {}),
        onRemoteStep: (e) => {
          if (!timing || e.tokens !== 1) return;
          const k = `${v.name} hop ${e.start}:${e.end}`;
          (timings[`${k} compute`] ??= []).push(e.computeMs);
          (timings[`${k} round trip`] ??= []).push(e.roundTripMs);
        },
      }),
    );
  }
  const client = clients.get("swarm")!;
  const localRuns: GenerationResult[] = [],
    localOffRuns: GenerationResult[] = [],
    pipeRuns: GenerationResult[] = [];
  const swarmRuns = new Map<string, GenerationResult[]>(variants.map((v) => [v.name, []]));
  let route = "", maxAbsDiff = 0;
  try {
    for (const c of clients.values()) {
      for (let i = 0; i < 50 && c.swarmTable.servers(model).length < 3; i++) {
        await c.swarmTable.refresh();
      }
    }
    const spare = throwaway.openSession({ maxLength: 512 });
    await throwaway.generateWith(spare, a.prompt!, options).complete().finally(() => spare.close());
    const runSwarm = async (name: string) => {
      variant = name;
      const c = clients.get(name)!;
      const session = c.openSession({ maxLength: 512 });
      try {
        const r = await c.generateWith(timedSession(`${name}_blocks`, session), a.prompt!, options)
          .complete();
        route = describeRoute(session.route);
        if (name === "swarm" && measuring) {
          hops.all += (session.stats.steps - 1) * (session.route.length - 1);
          hops.pushed += session.stats.pushed;
        }
        return r;
      } finally {
        await session.close();
      }
    };
    // warm-up all, then alternate so that all see the same machine load; each run starts one
    // variant later than the one before, and odd runs go through the variants backwards, so that
    // no variant always follows the same one (whichever runs right after another pays for its
    // leftovers: its garbage collection, its threads parking); a pause before each lets that settle
    const order: { name: string; run: () => Promise<GenerationResult>; into: GenerationResult[] }[] = [
      { name: "local", run: () => runLocal("local", local, head), into: localRuns },
      ...(localOff && headOff
        ? [{
          name: "local_unpinned",
          run: () => runLocal("local_unpinned", localOff, headOff),
          into: localOffRuns,
        }]
        : []),
      ...variants.map((v) => ({ name: v.name, run: () => runSwarm(v.name), into: swarmRuns.get(v.name)! })),
      ...(pipes.length ? [{ name: "floor", run: runPipes, into: pipeRuns }] : []),
    ];
    for (const o of order) await o.run();
    timing = a.breakdown;
    measuring = true;
    for (let i = 0; i < runs; i++) {
      for (let k = 0; k < order.length; k++) {
        const j = (i + k) % order.length;
        const o = order[i % 2 === 0 ? j : order.length - 1 - j];
        await new Promise((r) => setTimeout(r, SETTLE_MS));
        o.into.push(await o.run());
      }
      log(
        `run ${i + 1}: ` + order.map((o) => `${o.name} ${tokensPerSecond(o.into[i]).toFixed(1)}`).join(", ") +
          " tok/s",
      );
    }
    timing = measuring = false;
    const check = client.openSession({ maxLength: 512 });
    const y = await check.step(x);
    await check.close();
    for (let i = 0; i < y.data.length; i++) {
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(y.data[i] - refOut.data[i]));
    }
  } finally {
    for (const c of clients.values()) await c.stop();
    await local.stop();
    await localOff?.stop();
  }
  const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
  /** Medians over a variant's runs: tokens/s, the prefill (session opening included), decode ms per token. */
  const tokSOf = (rs: GenerationResult[]) => median(rs.map(tokensPerSecond));
  const prefillOf = (rs: GenerationResult[]) => round(median(rs.map((r) => r.prefillMs)), 1);
  const decodeOf = (rs: GenerationResult[]) =>
    round(median(rs.map((r) => r.decodeMs / Math.max(1, r.tokenIds.length - 1))), 2);
  const relayRuns = swarmRuns.get("swarm_relay") ?? [], streamRuns = swarmRuns.get("swarm_libp2p") ?? [];
  const pushRuns = swarmRuns.get("swarm_push") ?? [], autoRuns = swarmRuns.get("swarm")!;
  const offRuns = swarmRuns.get("swarm_unpinned") ?? [];
  const sealedRuns = swarmRuns.get("swarm_sealed") ?? [];
  // the baseline is the faster single process: pinned as the runtime pins by default, or not pinned
  const pinnedTokS = tokSOf(localRuns), unpinnedTokS = localOffRuns.length ? tokSOf(localOffRuns) : 0;
  const localTokS = Math.max(pinnedTokS, unpinnedTokS), swarmTokS = tokSOf(autoRuns);
  const localRun = localRuns[0], swarmRun = autoRuns[0];
  log(`swarm route: ${route}`);
  const result = {
    swarm_tok_s: round(swarmTokS, 2),
    local_tok_s: round(localTokS, 2),
    ratio: round(swarmTokS / localTokS, 3),
    ...(localOffRuns.length
      ? {
        /** Which single process was faster (and is `local_tok_s`): threads pinned ("auto") or not ("off"). */
        local_pinning: unpinnedTokS > pinnedTokS ? "off" : "auto",
        local_pinned_tok_s: round(pinnedTokS, 2),
        local_unpinned_tok_s: round(unpinnedTokS, 2),
      }
      : {}),
    /** Decode hops of the default client pushed server to server (measured runs). */
    swarm_push_share: round(hops.pushed / Math.max(1, hops.all), 3),
    ...(relayRuns.length
      ? {
        swarm_push_tok_s: round(tokSOf(pushRuns), 2),
        ratio_push: round(tokSOf(pushRuns) / localTokS, 3),
        swarm_relay_tok_s: round(tokSOf(relayRuns), 2),
        ratio_relay: round(tokSOf(relayRuns) / localTokS, 3),
        push_vs_relay: round(tokSOf(pushRuns) / tokSOf(relayRuns), 3),
        /** The median of the per-run ratios (each pair ran back to back). */
        push_vs_relay_paired: round(
          median(pushRuns.map((r, i) => tokensPerSecond(r) / tokensPerSecond(relayRuns[i]))),
          3,
        ),
      }
      : {}),
    ...(offRuns.length
      ? {
        swarm_unpinned_tok_s: round(tokSOf(offRuns), 2),
        ratio_unpinned: round(tokSOf(offRuns) / localTokS, 3),
        /** What pinning gains the swarm: the default swarm ÷ the same swarm with nothing pinned. */
        pinned_vs_unpinned: round(swarmTokS / tokSOf(offRuns), 3),
      }
      : {}),
    ...(sealedRuns.length
      ? {
        swarm_sealed_tok_s: round(tokSOf(sealedRuns), 2),
        ratio_sealed: round(tokSOf(sealedRuns) / localTokS, 3),
        /** What plain loopback frames gain: the default swarm ÷ the same client with every frame sealed. */
        plain_vs_sealed: round(swarmTokS / tokSOf(sealedRuns), 3),
        plain_vs_sealed_paired: round(
          median(autoRuns.map((r, i) => tokensPerSecond(r) / tokensPerSecond(sealedRuns[i]))),
          3,
        ),
      }
      : {}),
    ...(streamRuns.length
      ? {
        swarm_libp2p_tok_s: round(tokSOf(streamRuns), 2),
        ratio_libp2p: round(tokSOf(streamRuns) / localTokS, 3),
      }
      : {}),
    ...(pipeRuns.length
      ? {
        floor_tok_s: round(tokSOf(pipeRuns), 2),
        ratio_floor: round(tokSOf(pipeRuns) / localTokS, 3),
        swarm_vs_floor: round(swarmTokS / tokSOf(pipeRuns), 3),
      }
      : {}),
    servers: 3,
    tokens,
    ...(clientLatencyMs > 0 ? { client_latency_ms: clientLatencyMs } : {}),
    prefill_ms: {
      local: prefillOf(localRuns),
      ...(localOffRuns.length ? { local_unpinned: prefillOf(localOffRuns) } : {}),
      swarm: prefillOf(autoRuns),
      ...(sealedRuns.length ? { swarm_sealed: prefillOf(sealedRuns) } : {}),
      ...(relayRuns.length ? { swarm_push: prefillOf(pushRuns), swarm_relay: prefillOf(relayRuns) } : {}),
      ...(pipeRuns.length ? { floor: prefillOf(pipeRuns) } : {}),
    },
    decode_ms_per_token: {
      local: decodeOf(localRuns),
      ...(localOffRuns.length ? { local_unpinned: decodeOf(localOffRuns) } : {}),
      swarm: decodeOf(autoRuns),
      ...(sealedRuns.length ? { swarm_sealed: decodeOf(sealedRuns) } : {}),
      ...(offRuns.length ? { swarm_unpinned: decodeOf(offRuns) } : {}),
      ...(relayRuns.length ? { swarm_push: decodeOf(pushRuns), swarm_relay: decodeOf(relayRuns) } : {}),
      ...(pipeRuns.length ? { floor: decodeOf(pipeRuns) } : {}),
    },
    blocks: layers,
    hidden_size: hiddenSize,
    runs,
    same_tokens: JSON.stringify(swarmRun.tokenIds) === JSON.stringify(localRun.tokenIds) &&
      [
        ...autoRuns,
        ...sealedRuns,
        ...pushRuns,
        ...relayRuns,
        ...streamRuns,
        ...pipeRuns,
        ...localOffRuns,
        ...offRuns,
      ].every(
        (r) => JSON.stringify(r.tokenIds) === JSON.stringify(localRun.tokenIds),
      ),
    /** Largest difference between the swarm's and the single process's block output on the prompt. */
    max_abs_diff: maxAbsDiff,
    ...(a.breakdown
      ? {
        breakdown: Object.fromEntries(
          Object.entries(timings).map(([k, v]) => [k, round(median(v), 2)]),
        ),
      }
      : {}),
  };
  if (maxAbsDiff > 1e-3) {
    console.error(`WARNING: the swarm's block output differs from the single process by ${maxAbsDiff}`);
  }
  if (a.json) console.log(JSON.stringify(result));
  else {console.log(
      `swarm ${result.swarm_tok_s} tok/s, local ${result.local_tok_s} tok/s, ratio ${result.ratio}`,
    );}
} finally {
  await Promise.all([...servers, ...serversOff].map((s) => s.kill()));
  await Promise.all(pipes.map((p) => p.stop()));
  await head.stop();
  await headOff?.stop();
  await Deno.remove(ck.dir, { recursive: true }).catch(() => {});
}
