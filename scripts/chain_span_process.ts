/**
 * The chained floor of `deno task bench topology`: a span of blocks in a process of its own that
 * takes its input from whoever connects to its TCP port and sends its output on to the next span's
 * port (the last span: back to the driver), with no protocol at all — the topology of a swarm whose
 * servers push each step to the next server (Petals' `rpc_push`) instead of returning it to the
 * client, measured without any of the swarm's code so that the topology alone is compared with the
 * client-mediated floor (scripts/pipe_span_process.ts) and the single process.
 *
 * Run as main (`deno run --allow-all scripts/chain_span_process.ts '{"model":…,"start":0,"end":4,
 * "threads":2,"next":<port>,"last":false}'`) it loads the span with the runtime's engine on its own
 * thread, listens on a free 127.0.0.1 port, writes one line `<port>\n`, accepts one connection,
 * connects to `next`, then serves until its input closes. A request is pipe_span_process.ts's:
 * a 12-byte header (u32 LE flags — bit 0 opens a fresh session —, tokens, hidden size) and
 * tokens × hidden f32 LE; a span forwards its output with the same header, the last one without it.
 *
 * `spawnChain()` starts one process per span, wired back to front, and returns a driver.
 * @module
 */
import type { HiddenStates } from "../lib/runtime/types.ts";
import { writeAll } from "../lib/wire/direct_channel.ts";
import { spawnModule } from "../tests/helpers/spawn_module.ts";
import { loadSpanEngine, serveSpanRequests, SPAN_HEADER, spanRequest } from "./pipe_span_process.ts";

export interface ChainOptions {
  model: string;
  /** Block boundaries: span i is `[cuts[i], cuts[i + 1])`. */
  cuts: number[];
  threads: number;
}

export interface Chain {
  /** Runs `hidden` through every span (`fresh`: new sessions first, at position 0). */
  step(hidden: HiddenStates, fresh: boolean): Promise<HiddenStates>;
  stop(): Promise<void>;
}

interface SpanArgs {
  model: string;
  start: number;
  end: number;
  threads: number;
  next: number;
  last: boolean;
}

const HOST = "127.0.0.1";

/** Reads exactly `n` bytes (null at a clean end before the first byte). */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const k = await conn.read(buf.subarray(got));
    if (k === null) {
      if (got === 0) return null;
      throw new Error(`chain span: connection ended after ${got} of ${n} bytes`);
    }
    got += k;
  }
  return buf;
}

/** The first line a child writes on its stdout (its port). */
async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.getReader();
  let text = "";
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
  } finally {
    reader.releaseLock();
  }
  return text.trim();
}

export async function spawnChain(o: ChainOptions): Promise<Chain> {
  if (o.cuts.length < 2) throw new RangeError(`a chain needs at least one span, got cuts ${o.cuts}`);
  const back = Deno.listen({ hostname: HOST, port: 0 });
  const children: Deno.ChildProcess[] = [];
  const conns: Deno.Conn[] = [];
  const kill = () => {
    for (const c of conns) c.close();
    for (const c of children) c.kill("SIGKILL");
    back.close();
  };
  try {
    let next = (back.addr as Deno.NetAddr).port;
    for (let i = o.cuts.length - 2; i >= 0; i--) {
      const args: SpanArgs = {
        model: o.model,
        start: o.cuts[i],
        end: o.cuts[i + 1],
        threads: o.threads,
        next,
        last: i === o.cuts.length - 2,
      };
      const child = spawnModule(import.meta.url, args);
      children.push(child);
      const port = Number(await firstLine(child));
      if (!Number.isInteger(port) || port < 1) {
        throw new Error(`chain span ${args.start}:${args.end} did not start`);
      }
      next = port;
    }
    const toFirst = await Deno.connect({ hostname: HOST, port: next });
    conns.push(toFirst);
    const fromLast = await back.accept();
    conns.push(fromLast);
    toFirst.setNoDelay(true);
    fromLast.setNoDelay(true);
    return {
      async step(hidden, fresh) {
        const [, tokens, size] = hidden.shape;
        await writeAll(toFirst, spanRequest(hidden, fresh));
        const out = await readExactly(fromLast, hidden.data.byteLength);
        if (!out) throw new Error("chain: the last span closed its connection");
        return { data: new Float32Array(out.buffer, 0, tokens * size), shape: [1, tokens, size] };
      },
      async stop() {
        toFirst.close(); // each span ends when its input closes, closing its output in turn
        await Promise.all(children.map((c) => c.status));
        fromLast.close();
        back.close();
      },
    };
  } catch (err) {
    kill();
    throw err;
  }
}

if (import.meta.main) {
  const o = JSON.parse(Deno.args[0]) as SpanArgs;
  const engine = await loadSpanEngine(o);
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const out = Deno.stdout.writable.getWriter();
  await out.write(new TextEncoder().encode(`${(listener.addr as Deno.NetAddr).port}\n`));
  const input = await listener.accept();
  listener.close();
  const next = await Deno.connect({ hostname: HOST, port: o.next });
  input.setNoDelay(true);
  next.setNoDelay(true);
  await serveSpanRequests(engine, o, (n) => readExactly(input, n), async (header, output) => {
    if (o.last) return await writeAll(next, output);
    const msg = new Uint8Array(SPAN_HEADER + output.byteLength);
    msg.set(header, 0);
    msg.set(output, SPAN_HEADER);
    await writeAll(next, msg);
  });
  next.close();
  input.close();
  await engine.dispose();
}
