/**
 * The runtime Worker: owns every onnxruntime session and KV cache (a `BlockEngine`) and serves
 * requests from `WorkerClient` one at a time from a priority queue — inference steps (and other
 * interactive work) before forward requests. A failing request answers with its error; the
 * Worker keeps running.
 * @module
 */
/// <reference lib="deno.worker" />
import { BlockEngine } from "./block_engine.ts";
import type { WorkerReply, WorkerRequest } from "./worker_protocol.ts";
import { priorityOf, serializeError } from "./worker_protocol.ts";

const engine = new BlockEngine();
const queues: [WorkerRequest[], WorkerRequest[]] = [[], []];
let busy = false;

/** Yields to the event loop (so queued messages arrive) without timer clamping. */
const channel = new MessageChannel();
let wake: (() => void) | undefined;
channel.port1.onmessage = () => wake?.();
const yieldLoop = () => new Promise<void>((r) => (wake = r, channel.port2.postMessage(0)));

function ownBuffer(a: Float32Array): Float32Array {
  return a.byteOffset === 0 && a.buffer.byteLength === a.byteLength ? a : a.slice();
}

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case "load":
      return await engine.load(req.args);
    case "open":
      engine.open(req.args.id, req.args.start, req.args.end, req.args.maxLength, req.args.batch);
      return null;
    case "close":
      return engine.close(req.args.id);
    case "step":
      return await engine.step(req.args.id, req.args.hidden, req.args.startFromPosition, req.args.hypoIds);
    case "forward":
      return await engine.forward(req.args.start, req.args.end, req.args.hidden);
    case "embed":
      return await engine.embed(req.args.ids, req.args.batch, req.args.tokens);
    case "logits":
      return await engine.logits(req.args.hidden, req.args.batch);
    case "dispose":
      await engine.dispose();
      return null;
  }
}

async function pump(): Promise<void> {
  if (busy) return;
  busy = true;
  try {
    while (true) {
      // An interactive request at the head of the queue is served at once (a yield costs ~0.2 ms
      // per decode step on a just-woken Worker); before a batch request, or to see whether more
      // work came, yield so that interactive requests already posted are queued first.
      if (queues[0].length === 0) await yieldLoop();
      const req = queues[0].shift() ?? queues[1].shift();
      if (!req) break;
      let reply: WorkerReply;
      const transfer: Transferable[] = [];
      try {
        const result = await handle(req);
        if (result && typeof result === "object" && "data" in result && result.data instanceof Float32Array) {
          const r = result as { data: Float32Array; shape: number[] };
          const data = ownBuffer(r.data);
          transfer.push(data.buffer as ArrayBuffer);
          reply = { id: req.id, ok: true, result: { data, shape: r.shape } };
        } else {
          reply = { id: req.id, ok: true, result };
        }
      } catch (err) {
        reply = { id: req.id, ok: false, error: serializeError(err) };
      }
      self.postMessage(reply, transfer);
    }
  } finally {
    busy = false;
  }
}

self.onmessage = (e: MessageEvent<WorkerRequest>) => {
  queues[priorityOf(e.data.op)].push(e.data);
  void pump();
};
