/**
 * The runtime Worker: owns every onnxruntime session and KV cache (a `KvEngine`) and serves
 * requests from `WorkerClient` one at a time from a priority queue — inference steps (and other
 * interactive work) before forward requests. A failing request answers with its error; the
 * Worker keeps running.
 *
 * It also owns the runtime's direct-path listener (lib/wire/direct_listener.ts): a session whose
 * client attached is served here (lib/runtime/direct_steps.ts), its steps queued like any other
 * interactive request, so a decode step never wakes the main thread; the main thread only hears
 * about it afterwards (`DirectEvent`s, for metrics and idle timers).
 * @module
 */
/// <reference lib="deno.worker" />
import { errorMessage } from "../errors.ts";
import { DirectListener } from "../wire/mod.ts";
import type { Engine } from "./engine_types.ts";
import { KvEngine } from "./kv_engine.ts";
import { RuntimeError } from "../errors.ts";
import { noDirectError, offerDirectHere } from "./direct_steps.ts";
import type { DirectServing, HiddenStates } from "./types.ts";
import type { BatchEvent, BatchWindows, DirectEvent, WorkerReply, WorkerRequest } from "./worker_protocol.ts";
import { DIRECT_REPORT_MS, priorityOf, serializeError } from "./worker_protocol.ts";
import { splitRows, stackRows, takeLogits } from "./logits_batch.ts";
import {
  BatchPeers,
  DEFAULT_BATCH_OPTIONS,
  type JobKind,
  type PendingStep,
  readySessions,
  settlePart,
  takeBatch,
} from "./batch_scheduler.ts";

/** A queued request: from the main thread (answered by postMessage) or from a direct path (local). */
interface Job {
  req: WorkerRequest;
  local?: { resolve: (v: unknown) => void; reject: (e: unknown) => void };
  /** A step's state in the batch scheduler (batch_scheduler.ts). */
  step?: PendingStep;
}

/** A queued job with its step state when it is one. */
function job(req: WorkerRequest, local?: Job["local"]): Job {
  if (req.op !== "step") return { req, local };
  const a = req.args;
  const step: PendingStep = {
    id: a.id,
    hidden: a.hidden,
    startFromPosition: a.startFromPosition,
    hypoIds: a.hypoIds,
    queuedAt: performance.now(),
    done: 0,
  };
  return { req, local, step };
}

/** What a job is to the batch scheduler. */
function kindOf(j: Job): JobKind {
  if (j.step) return { step: j.step };
  switch (j.req.op) {
    case "open":
    case "close":
    case "direct_offer":
    case "direct_cancel":
      return { session: j.req.args.id };
    case "embed":
    case "logits":
      return { free: true };
    default:
      return { barrier: true };
  }
}

const engine: Engine = new KvEngine();
const queues: [Job[], Job[]] = [[], []];
let busy = false;
let listener: DirectListener | undefined;
/** Per session id: its offered, then served, direct path. */
const directs = new Map<string, DirectServing>();

/** Yields to the event loop (so queued messages arrive) without timer clamping. */
const channel = new MessageChannel();
let wake: (() => void) | undefined;
channel.port1.onmessage = () => wake?.();
const yieldLoop = () => new Promise<void>((r) => (wake = r, channel.port2.postMessage(0)));

function ownBuffer(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.buffer.byteLength === a.byteLength ? a : a.slice();
}

const post = (e: DirectEvent) => self.postMessage(e);

/** Steps served over direct paths and not yet reported, per session id. */
const unreported = new Map<string, [number, number][]>();
let reportTimer: ReturnType<typeof setTimeout> | undefined;

let lastReport = -Infinity;

/** Leading and trailing edge: a step after a quiet spell is reported at once, the rest in batches. */
function noteStep(id: string, tokens: number, computeMs: number): void {
  const list = unreported.get(id);
  if (list) list.push([tokens, computeMs]);
  else unreported.set(id, [[tokens, computeMs]]);
  if (reportTimer !== undefined) return;
  const wait = lastReport + DIRECT_REPORT_MS - performance.now();
  if (wait <= 0) return flushAll();
  reportTimer = setTimeout(flushAll, wait);
}

function flushAll(): void {
  clearTimeout(reportTimer);
  reportTimer = undefined;
  lastReport = performance.now();
  for (const sid of [...unreported.keys()]) flushSteps(sid);
}

function flushSteps(id: string): void {
  const steps = unreported.get(id);
  if (!steps) return;
  unreported.delete(id);
  post({ event: "direct", id, kind: "steps", steps, position: engine.positionOf(id, 0) });
}

function offerDirect(args: Extract<WorkerRequest, { op: "direct_offer" }>["args"]) {
  if (!listener) throw noDirectError();
  const { id } = args;
  engine.positionOf(id); // UNKNOWN_SESSION for a closed session
  cancelDirect(id);
  const serving = offerDirectHere(
    listener,
    {
      batch: args.batch,
      step: (hidden, o) =>
        enqueueLocal({
          id: -1,
          op: "step",
          args: {
            id,
            hidden: { data: hidden.data, shape: [...hidden.shape] },
            startFromPosition: o?.startFromPosition,
            hypoIds: o?.hypoIds && Array.from(o.hypoIds),
          },
        }) as Promise<HiddenStates>,
    },
    args.hiddenSize,
    { dtype: args.dtype, onStep: (e) => noteStep(id, e.tokens, e.computeMs) },
  );
  directs.set(id, serving);
  const forget = () => directs.get(id) === serving && directs.delete(id);
  // never rejects: an unhandled rejection would end the Worker and every session with it
  serving.attached.then((ok) => {
    if (ok) return post({ event: "direct", id, kind: "attached" });
    forget();
    post({ event: "direct", id, kind: "lapsed" });
  }, (err) => {
    forget();
    post({
      event: "direct",
      id,
      kind: "ended",
      end: { kind: "failed", code: "INTERNAL", message: errorMessage(err) },
    });
  });
  void serving.ended.then((end) => {
    forget();
    flushSteps(id);
    post({ event: "direct", id, kind: "ended", end });
  });
  return serving.offer;
}

function cancelDirect(id: string, error?: { code: string; message: string; hint?: string }): void {
  directs.get(id)?.cancel(error);
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case "load":
      return await engine.load(req.args);
    case "open":
      engine.open(req.args.id, req.args.start, req.args.end, req.args.maxLength, req.args.batch);
      return null;
    case "close":
      cancelDirect(req.args.id);
      peers.closed(req.args.id);
      return engine.close(req.args.id);
    case "step":
      return await engine.step(req.args.id, req.args.hidden, req.args.startFromPosition, req.args.hypoIds);
    case "forward":
      return await engine.forward(req.args.start, req.args.end, req.args.hidden);
    case "embed":
      return await engine.embed(req.args.ids, req.args.batch, req.args.tokens);
    case "logits":
      return await engine.logits(req.args.hidden, req.args.batch);
    case "direct_listen":
      listener ??= new DirectListener(req.args);
      await listener.start();
      return { port: listener.port };
    case "direct_rebind":
      if (!listener) throw noDirectError();
      return { port: await listener.rebind(req.args.port) };
    case "direct_offer":
      return offerDirect(req.args);
    case "direct_cancel":
      cancelDirect(req.args.id, req.args.error);
      return null;
    case "stats":
      (globalThis as { gc?: () => void }).gc?.();
      return { sessions: engine.sessions, native: engine.native?.(), heapBytes: Deno.memoryUsage().heapUsed };
    case "dispose":
      for (const id of [...directs.keys()]) cancelDirect(id);
      flushAll(); // report every served step before the Worker goes (served tokens are earnings)
      flushBatches();
      await listener?.stop();
      listener = undefined;
      await engine.dispose();
      return null;
  }
}

function enqueueLocal(req: WorkerRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    queues[priorityOf(req.op)].push(job(req, { resolve, reject }));
    void pump();
  });
}

/** Answers a job: its promise (direct paths) or a reply to the main thread. */
function answer(j: Job, ok: boolean, value: unknown): void {
  const { req, local } = j;
  if (local) return ok ? local.resolve(value) : local.reject(value);
  if (!ok) {
    return self.postMessage({ id: req.id, ok: false, error: serializeError(value) } satisfies WorkerReply);
  }
  const transfer: Transferable[] = [];
  let reply: WorkerReply;
  if (value && typeof value === "object" && "data" in value && value.data instanceof Float32Array) {
    const r = value as { data: Float32Array; shape: number[] };
    const data = ownBuffer(r.data);
    transfer.push(data.buffer as ArrayBuffer);
    reply = { id: req.id, ok: true, result: { data, shape: r.shape } };
  } else {
    reply = { id: req.id, ok: true, result: value };
  }
  self.postMessage(reply, transfer);
}

/** Whom the next batch waits for. */
const peers = new BatchPeers();
/** Longest wait for the recent sessions to come back (docs/benchmarks.md, "Waiting for the others"). */
const WINDOW_MS = 8;
/** Ends a `waitForPeers` sleep: set while it sleeps, called when a job is queued (`pump`). */
let arrived: (() => void) | undefined;

/**
 * When several sessions stepped in the last two batches and fewer have a step queued now, waits a
 * little for the others (their steps are usually on their way: a client got its answer and sends
 * the next one; on a small machine the compute threads hold every core while a batch runs, so the
 * clients' next steps come only after it; through a swarm they come from the other servers of the
 * route, a few milliseconds apart). Sessions would otherwise settle into taking turns, each alone
 * or in twos in its batch. At most `WINDOW_MS`, asleep until a job is queued; a wait in vain
 * (sessions whose steps come from afar) turns waiting off for the next 2 batches (`BatchPeers`).
 */
async function waitForPeers(): Promise<void> {
  const expected = peers.expected();
  if (expected === 0 || readySessions(queues[0], kindOf) >= expected) return;
  const start = performance.now(), deadline = start + WINDOW_MS;
  // asleep until a job is queued or the deadline: a poll would take a core the senders may need
  while (readySessions(queues[0], kindOf) < expected) {
    const left = deadline - performance.now();
    if (left <= 0) {
      peers.inVain();
      return noteWindow(false, performance.now() - start);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => (arrived = undefined, resolve()), left);
      arrived = () => (arrived = undefined, clearTimeout(timer), resolve());
    });
  }
  noteWindow(true, performance.now() - start);
}

/** Runs the steps ready at the head of the queue as one batch (batch_scheduler.ts). */
async function runBatch(): Promise<void> {
  await waitForPeers();
  const parts = takeBatch(queues[0], kindOf, DEFAULT_BATCH_OPTIONS);
  const t0 = performance.now();
  let results;
  try {
    results = await engine.stepMany(parts.map((p) => p.req));
  } catch (error) {
    results = parts.map(() => ({ ok: false as const, error }));
  }
  peers.ran(parts.map((p) => p.step.id));
  const again: Job[] = [];
  const waits: number[] = [];
  parts.forEach((p, n) => {
    if (p.step.done === 0) waits.push(t0 - p.step.queuedAt);
    const r = settlePart(p, results[n]);
    if (r.state === "more") again.push(p.job);
    else if (r.state === "done") answer(p.job, true, r.value);
    else answer(p.job, false, r.error);
  });
  queues[0].unshift(...again);
  noteBatch(parts.length, waits);
}

/** Batch sizes, queue waits and windows not yet reported. */
let batchSizes: number[] = [], batchWaits: number[] = [];
let windows: BatchWindows = { filled: 0, inVain: 0, ms: 0 };
let batchTimer: ReturnType<typeof setTimeout> | undefined;

/** Counts a wait for the recent sessions (reported with the batches). */
function noteWindow(filled: boolean, ms: number): void {
  if (filled) windows.filled++;
  else windows.inVain++;
  windows.ms += ms;
}

/** Reports batches to the main thread (metrics) at most every `DIRECT_REPORT_MS`. */
function noteBatch(size: number, waitsMs: number[]): void {
  batchSizes.push(size);
  batchWaits.push(...waitsMs);
  batchTimer ??= setTimeout(flushBatches, DIRECT_REPORT_MS);
}

function flushBatches(): void {
  clearTimeout(batchTimer);
  batchTimer = undefined;
  if (batchSizes.length === 0) return;
  self.postMessage({ event: "batch", sizes: batchSizes, waitsMs: batchWaits, windows } satisfies BatchEvent);
  batchSizes = [];
  batchWaits = [];
  windows = { filled: 0, inVain: 0, ms: 0 };
}

/** The logits requests queued now, in one LM-head pass (logits_batch.ts). */
async function runLogits(): Promise<void> {
  // let requests already posted arrive first: a yield is a fraction of a millisecond, an LM-head pass
  // of a real vocabulary tens of them, which each request queued now no longer pays again
  await yieldLoop();
  const partOf = (j: Job) => j.req.op === "logits" ? j.req.args : undefined;
  const H = (engine as KvEngine).cfg?.hiddenSize ?? 0;
  // the main thread checks every request; a malformed one would fail the whole pass, so it goes alone
  const jobs = takeLogits(queues[0], partOf, (j) => "barrier" in kindOf(j)).filter((j) => {
    const p = partOf(j)!;
    if (p.hidden.length === p.batch * H) return true;
    answer(
      j,
      false,
      new RuntimeError("BAD_INPUT", `logits input of ${p.hidden.length} values for [${p.batch}, ${H}]`, {
        hint: "pass the last position's hidden states, [B, hidden]",
      }),
    );
    return false;
  });
  if (jobs.length === 0) return;
  const parts = jobs.map((j) => partOf(j)!);
  try {
    const rows = parts.reduce((n, p) => n + p.batch, 0);
    const out = await engine.logits(jobs.length === 1 ? parts[0].hidden : stackRows(parts, H), rows);
    const V = out.shape[1];
    if (jobs.length === 1) return answer(jobs[0], true, out);
    splitRows(out.data, parts.map((p) => p.batch), V).forEach((r, n) => answer(jobs[n], true, r));
  } catch (err) {
    for (const j of jobs) answer(j, false, err);
  }
}

async function pump(): Promise<void> {
  arrived?.();
  if (busy) return;
  busy = true;
  try {
    while (true) {
      // An interactive request at the head of the queue is served at once (a yield is a measurable
      // part of a decode step on a just-woken Worker); before a batch request, or to see whether more
      // work came, yield so that interactive requests already posted are queued first.
      if (queues[0].length === 0) await yieldLoop();
      if (queues[0][0]?.step) {
        await runBatch();
        continue;
      }
      if (queues[0][0]?.req.op === "logits") {
        await runLogits();
        continue;
      }
      const j = queues[0].shift() ?? queues[1].shift();
      if (!j) break;
      try {
        answer(j, true, await handle(j.req));
      } catch (err) {
        answer(j, false, err);
      }
    }
  } finally {
    busy = false;
  }
}

self.onmessage = (e: MessageEvent<WorkerRequest>) => {
  queues[priorityOf(e.data.op)].push(job(e.data));
  void pump();
};
