/**
 * `deno task bench hostile`: what hostile peers cost a node (docs/benchmarks.md, docs/security.md).
 *
 *   - `frame`: main-thread time of `decodeFrame` on 4 MiB hostile headers (nested arrays, wide
 *     arrays, a huge tensor shape…), against the reference of what the decoder did before its
 *     bounds (JSON.parse of the header, then JSON.stringify of the bad value for the error),
 *     measured in the same run; medians over `--runs`.
 *   - `link`: how long a server takes to answer a failed `link_to` for each kind of target
 *     (refused, closed port, open port that closes, open port that stays silent), over real
 *     loopback sockets with `linkDirect`'s deadline (`--link-ms`, default its default); the spread
 *     between kinds is what a client could learn from timing.
 *   - `zeros`: a valid frame, then 1 MiB of zero bytes (each one an empty frame) sent ahead of
 *     the reader: the main-thread time until the stream's reader refuses it (one frame at a time,
 *     least frame size), against the reference of the decoder before (every frame split out at
 *     once), measured in the same run; medians over `--runs`.
 *   - `flood`: 1000 relayed records of fresh keys, about 14 KB each, offered to a swarm table from
 *     one source: the time to handle them and what a table reply then carries, with the table's
 *     bounds (`bounded`) and with them lifted (`unbounded`: every record admitted and passed on,
 *     as before the bounds), in the same run.
 *
 *   deno task bench hostile [frame|link|zeros|flood ...] [--runs 5] [--link-ms 2000] [--json]
 *
 * `--json` prints one object: `{"frame": {<case>: {"decode_ms", "reference_ms", "ratio"}}, "link":
 * {<kind>: {"median_ms", "min_ms", "max_ms"}}, "zeros": {"1MiB": {"refuse_ms", "reference_ms",
 * "reference_frames", "ratio"}}, "flood": {"bounded"|"unbounded": {"offer_ms", "accepted",
 * "reply_records", "reply_bytes", "reply_ms"}}}`.
 * @module
 */
import { parseArgs } from "node:util";
import { decodeFrame, FRAME_VERSION } from "../lib/wire/frame_codec.ts";
import { LINK_FAIL_MS, linkDirect } from "../lib/wire/link_target.ts";
import {
  DEFAULT_WIRE_LIMITS,
  encodeFrame,
  lengthPrefixed,
  LengthPrefixedDecoder,
  MIN_FRAME_BYTES,
  type SignedRecordWire,
  type SwarmRecord,
} from "../lib/wire/mod.ts";
import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { signRecord } from "../lib/swarm/record_signer.ts";
import { SwarmTable } from "../lib/swarm/swarm_table.ts";

const MiB = 1024 * 1024;
const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function frame(header: string): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(5 + h.byteLength);
  out[0] = FRAME_VERSION;
  new DataView(out.buffer).setUint32(1, h.byteLength, true);
  out.set(h, 5);
  return out;
}

/** Hostile headers of about 4 MiB (the header cap). */
export function hostileHeaders(): Record<string, string> {
  const n = 2 * MiB - 64;
  const list = (item: string) =>
    new Array(Math.floor((4 * MiB - 128) / (item.length + 1))).fill(item).join(",");
  return {
    nested_arrays: "[".repeat(n) + "]".repeat(n),
    nested_in_field: `{"type":"step","x":${"[".repeat(n - 20)}${"]".repeat(n - 20)}}`,
    wide_empty_arrays: `{"type":"table","records":[${list("[]")}]}`,
    wide_numbers: `{"type":"step","hypoIds":[${list("0")}]}`,
    huge_shape: `{"type":"step","stepId":0,"tensors":[{"name":"hidden","dtype":"f32","shape":[${
      list("1")
    }]}]}`,
  };
}

/** What the decoder did before its bounds: parse the whole header, then stringify the bad value. */
function reference(body: Uint8Array): void {
  const text = new TextDecoder().decode(body.subarray(5));
  const v = JSON.parse(text);
  try {
    JSON.stringify(v);
  } catch {
    String(v).slice(0, 80);
  }
}

function time(fn: () => void): number {
  const t0 = performance.now();
  try {
    fn();
  } catch {
    // hostile frames are refused: the cost is what counts
  }
  return performance.now() - t0;
}

function benchFrames(runs: number) {
  const out: Record<string, { decode_ms: number; reference_ms: number; ratio: number }> = {};
  for (const [name, header] of Object.entries(hostileHeaders())) {
    const body = frame(header);
    const dec: number[] = [], ref: number[] = [];
    for (let i = 0; i < runs; i++) {
      dec.push(time(() => decodeFrame(body)));
      ref.push(time(() => reference(body)));
    }
    const d = median(dec), r = median(ref);
    out[name] = { decode_ms: round(d), reference_ms: round(r), ratio: round(r / d) };
  }
  return out;
}

async function benchLinks(runs: number, failAtMs: number) {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closing = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const loops = [
    (async () => {
      for await (const c of silent) held.push(c);
    })(),
    (async () => {
      for await (const c of closing) c.close();
    })(),
  ];
  const offer = { ticket: "A".repeat(43), key: "A".repeat(43) };
  const kinds: Record<string, { host: string; port: number; clientHost: string }> = {
    refused_internal: { host: "127.0.0.1", port: closedPort, clientHost: "1.1.1.1" },
    refused_mapped: { host: "::ffff:7f00:1", port: closedPort, clientHost: "1.1.1.1" },
    closed_port: { host: "127.0.0.1", port: closedPort, clientHost: "127.0.0.1" },
    open_closing: { host: "127.0.0.1", port: (closing.addr as Deno.NetAddr).port, clientHost: "127.0.0.1" },
    open_silent: { host: "127.0.0.1", port: (silent.addr as Deno.NetAddr).port, clientHost: "127.0.0.1" },
  };
  const out: Record<string, { median_ms: number; min_ms: number; max_ms: number }> = {};
  try {
    for (const [name, k] of Object.entries(kinds)) {
      const ms: number[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        await linkDirect({ ...offer, host: k.host, port: k.port }, { clientHost: k.clientHost, failAtMs })
          .then((ch) => ch.abort(), () => {});
        ms.push(performance.now() - t0);
      }
      out[name] = {
        median_ms: round(median(ms)),
        min_ms: round(Math.min(...ms)),
        max_ms: round(Math.max(...ms)),
      };
    }
  } finally {
    silent.close();
    closing.close();
    for (const c of held) c.close();
    await Promise.allSettled(loops);
  }
  return out;
}

/** `n` signed records of fresh keys, about 14 KB each. */
async function floodRecords(n: number): Promise<SignedRecordWire[]> {
  const out: SignedRecordWire[] = [];
  const label = (c: string) => c.repeat(63);
  for (let i = 0; i < n; i++) {
    const key = await generateKeyPair("Ed25519");
    const now = Date.now();
    const record: SwarmRecord = {
      peerId: peerIdFromPrivateKey(key).toString(),
      addrs: Array.from({ length: 32 }, (_, a) => `/dns4/${[..."abcde"].map(label).join(".")}.x${a}/tcp/1`),
      model: "bench/model",
      start: 0,
      end: 4,
      state: "online",
      throughput: 1e9,
      inferenceRps: 1e9,
      forwardRps: 1e9,
      networkRps: 1e9,
      cacheTokensLeft: 1,
      weights: "fp32",
      version: "0.1.0",
      wallet: null,
      usingRelay: false,
      nextPings: Object.fromEntries(
        Array.from({ length: 64 }, (_, p) => [`${"1".repeat(44)}${B58[p % 58]}${B58[i % 58]}`, 1]),
      ),
      seq: now,
      expiresAt: now + 600_000,
    };
    out.push(await signRecord(record, key));
  }
  return out;
}

async function benchFlood() {
  const records = await floodRecords(1000);
  const out: Record<string, Record<string, number>> = {};
  for (const bounded of [true, false]) {
    const table = new SwarmTable(bounded ? {} : { newPerSourceBurst: 1e9, newPerSourcePerMinute: 1e9 });
    const t0 = performance.now();
    let accepted = 0;
    for (const r of records) {
      if ((await table.offer(r, { from: "attacker", source: "203.0.113.9" })).accepted) accepted++;
    }
    const offerMs = performance.now() - t0;
    const t1 = performance.now();
    // bounded: what a table reply carries now; unbounded: every record, as replies were built before
    const reply = bounded
      ? table.signedRecords(undefined, { reachableOnly: true, maxBytes: 4 * MiB - 4096 })
      : table.signedRecords();
    let bytes = 0;
    try {
      bytes = encodeFrame({ type: "table", records: reply }).byteLength;
    } catch {
      bytes = reply.reduce((n, r) => n + r.payload.length + r.signature.length + 30, 0); // over the cap
    }
    const replyMs = performance.now() - t1;
    out[bounded ? "bounded" : "unbounded"] = {
      offer_ms: round(offerMs),
      accepted,
      reply_records: reply.length,
      reply_bytes: bytes,
      reply_ms: round(replyMs),
    };
  }
  return out;
}

/** A valid frame followed by `bytes` zero bytes: a million empty frames per MiB. */
function zeroFlood(bytes: number): Uint8Array {
  const valid = lengthPrefixed(encodeFrame({ type: "info_request" }));
  const out = new Uint8Array(valid.byteLength + bytes);
  out.set(valid);
  return out;
}

export function benchZeros(runs: number) {
  const bytes = zeroFlood(MiB);
  const now: number[] = [], ref: number[] = [];
  let frames = 0;
  for (let i = 0; i < runs; i++) {
    now.push(time(() => {
      // what the stream channel does now: one frame per read, no frame under the least size
      const d = new LengthPrefixedDecoder(DEFAULT_WIRE_LIMITS.maxFrameBytes, MIN_FRAME_BYTES);
      d.append(bytes);
      decodeFrame(d.next()!);
      d.next();
    }));
    ref.push(time(() => {
      // before: every frame of what was buffered split out at once (then decoded one by one)
      frames = new LengthPrefixedDecoder(DEFAULT_WIRE_LIMITS.maxFrameBytes).push(bytes).length;
    }));
  }
  const d = median(now), r = median(ref);
  return { refuse_ms: round(d), reference_ms: round(r), reference_frames: frames, ratio: round(r / d) };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      runs: { type: "string", default: "5" },
      "link-ms": { type: "string", default: String(LINK_FAIL_MS) },
      json: { type: "boolean", default: false },
    },
  });
  const runs = Number(values.runs), linkMs = Number(values["link-ms"]);
  if (!Number.isInteger(runs) || runs < 1) {
    throw new RangeError(`--runs must be an integer ≥ 1, got ${values.runs}`);
  }
  if (!Number.isFinite(linkMs) || linkMs < 10) {
    throw new RangeError(`--link-ms must be ≥ 10, got ${values["link-ms"]}`);
  }
  const parts = positionals.length ? positionals : ["frame", "link", "zeros", "flood"];
  const result: Record<string, unknown> = {};
  if (parts.includes("frame")) result.frame = benchFrames(runs);
  if (parts.includes("link")) result.link = await benchLinks(runs, linkMs);
  if (parts.includes("zeros")) result.zeros = { "1MiB": benchZeros(runs) };
  if (parts.includes("flood")) result.flood = await benchFlood();
  if (values.json) console.log(JSON.stringify(result));
  else {
    for (const [part, rows] of Object.entries(result)) {
      console.log(`== ${part}`);
      for (const [name, row] of Object.entries(rows as Record<string, unknown>)) {
        console.log(`${name.padEnd(20)} ${JSON.stringify(row)}`);
      }
    }
  }
}
