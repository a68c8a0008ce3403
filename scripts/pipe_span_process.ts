/**
 * The floor of `deno task bench:swarm`: a span of blocks in a process of its own, driven over its
 * stdin/stdout with no network protocol at all (no libp2p, no TCP, no encryption, no session
 * messages), so three of them taking turns measure what three processes sharing this machine's
 * cores allow, next to the swarm and the single process, in the same run.
 *
 * Run as main (`deno run --allow-all scripts/pipe_span_process.ts '{"model":…,"start":0,"end":4,"threads":2}'`)
 * it loads the span with the runtime's engine (lib/runtime/kv_engine.ts, the code the runtime
 * Worker runs, here on the process's own thread), writes one line `ready\n`, then serves requests until
 * stdin closes. A request is a 12-byte header (u32 LE: flags — bit 0 opens a fresh session —, tokens,
 * hidden size) and tokens × hidden f32 LE; the reply is the span's output of the same size, in the
 * same layout without the header.
 *
 * `spawnPipeSpan()` starts one and returns a driver.
 * @module
 */
import type { EngineLoadResult } from "../lib/runtime/engine_types.ts";
import { KvEngine } from "../lib/runtime/kv_engine.ts";
import { resolveOrtLibrary } from "../lib/runtime/native/ort_library_path.ts";
import { engineSource, resolveCheckpoint } from "../lib/runtime/checkpoint.ts";
import type { HiddenStates } from "../lib/runtime/types.ts";
import type { CpuPinning } from "../lib/util/cpu_list.ts";
import { spawnModule } from "../tests/helpers/spawn_module.ts";

export interface PipeSpanOptions {
  model: string;
  start: number;
  end: number;
  threads: number;
  /**
   * Pinning of the compute threads, as the runtime does it (default "auto"); pinning pins this
   * thread for good, and threads it creates later inherit that.
   */
  pinning?: CpuPinning;
}

export interface PipeSpan {
  /** Steps the span's session (`fresh`: a new session first, at position 0). */
  step(hidden: HiddenStates, fresh: boolean): Promise<HiddenStates>;
  stop(): Promise<void>;
}

/** Bytes of a span request's header. */
export const SPAN_HEADER = 12;

/** A span request: the header (flags, tokens, hidden size) and the hidden states, f32 LE. */
export function spanRequest(hidden: HiddenStates, fresh: boolean): Uint8Array {
  const [, tokens, size] = hidden.shape;
  const msg = new Uint8Array(SPAN_HEADER + hidden.data.byteLength);
  const h = new DataView(msg.buffer);
  h.setUint32(0, fresh ? 1 : 0, true);
  h.setUint32(4, tokens, true);
  h.setUint32(8, size, true);
  msg.set(new Uint8Array(hidden.data.buffer, hidden.data.byteOffset, hidden.data.byteLength), SPAN_HEADER);
  return msg;
}

/** Loads blocks `[start, end)` of `model` with the runtime's engine, on this thread (pinned as `o.pinning` says). */
export async function loadSpanEngine(
  o: PipeSpanOptions,
  loaded?: (r: EngineLoadResult) => void,
): Promise<KvEngine> {
  const ck = await resolveCheckpoint({ model: o.model }, { start: o.start, end: o.end });
  const engine = new KvEngine();
  const r = await engine.load({
    libraryPath: await resolveOrtLibrary(),
    ...engineSource(ck),
    start: o.start,
    end: o.end,
    weights: "fp32",
    threads: o.threads,
    pinning: o.pinning ?? "auto",
  });
  loaded?.(r);
  return engine;
}

/**
 * Serves span requests until `read` reports a clean end: each request steps the span's session (a
 * fresh one when its flag says so) and its output goes to `reply` with the request's header.
 */
export async function serveSpanRequests(
  engine: KvEngine,
  o: { start: number; end: number },
  read: (n: number) => Promise<Uint8Array | null>,
  reply: (header: Uint8Array, output: Uint8Array) => Promise<void>,
): Promise<void> {
  let session = 0;
  while (true) {
    const header = await read(SPAN_HEADER);
    if (!header) return;
    const h = new DataView(header.buffer, header.byteOffset, SPAN_HEADER);
    const fresh = (h.getUint32(0, true) & 1) === 1,
      tokens = h.getUint32(4, true),
      size = h.getUint32(8, true);
    const body = await read(tokens * size * 4);
    if (!body) return;
    if (fresh || session === 0) {
      if (session > 0) engine.close(String(session));
      engine.open(String(++session), o.start, o.end, 512, 1);
    }
    const y = await engine.step(String(session), {
      data: new Float32Array(body.buffer, body.byteOffset, tokens * size),
      shape: [1, tokens, size],
    });
    await reply(header, new Uint8Array(y.data.buffer, y.data.byteOffset, y.data.byteLength));
  }
}

/** Reads exactly `n` bytes into a new buffer (null at a clean end before the first byte). */
async function readExactly(r: ReadableStreamBYOBReader, n: number): Promise<Uint8Array | null> {
  let buf = new Uint8Array(n), got = 0;
  while (got < n) {
    const { value, done } = await r.read(buf.subarray(got));
    if (done || !value) {
      if (got === 0) return null;
      throw new Error(`pipe span: stream ended after ${got} of ${n} bytes`);
    }
    got += value.byteLength;
    buf = new Uint8Array(value.buffer);
  }
  return buf;
}

async function writeAll(w: WritableStreamDefaultWriter<Uint8Array>, bytes: Uint8Array): Promise<void> {
  await w.ready;
  await w.write(bytes);
}

export async function spawnPipeSpan(o: PipeSpanOptions): Promise<PipeSpan> {
  const child = spawnModule(import.meta.url, o);
  const reader = child.stdout.getReader({ mode: "byob" });
  const ready = await readExactly(reader, 6);
  if (!ready || new TextDecoder().decode(ready) !== "ready\n") {
    child.kill("SIGKILL");
    throw new Error(`pipe span ${o.start}:${o.end} did not start`);
  }
  const writer = child.stdin.getWriter();
  return {
    async step(hidden, fresh) {
      const [, tokens, size] = hidden.shape;
      await writeAll(writer, spanRequest(hidden, fresh));
      const out = await readExactly(reader, hidden.data.byteLength);
      if (!out) throw new Error(`pipe span ${o.start}:${o.end} exited`);
      return { data: new Float32Array(out.buffer, 0, tokens * size), shape: [1, tokens, size] };
    },
    async stop() {
      await writer.close().catch(() => {});
      await child.status;
    },
  };
}

if (import.meta.main) {
  const o = JSON.parse(Deno.args[0]) as PipeSpanOptions;
  // the engine on this thread (no runtime Worker, so no thread hop per step): the tightest floor
  const engine = await loadSpanEngine(o);
  const out = Deno.stdout.writable.getWriter();
  await writeAll(out, new TextEncoder().encode("ready\n"));
  const input = Deno.stdin.readable.getReader({ mode: "byob" });
  await serveSpanRequests(engine, o, (n) => readExactly(input, n), (_, output) => writeAll(out, output));
  await engine.dispose();
}
