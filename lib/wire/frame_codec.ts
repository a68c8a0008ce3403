/**
 * Frame codec of the swarm protocols. Pure: bytes in, validated messages out.
 *
 * On a stream every frame is an unsigned-varint length prefix (libp2p's `lp` framing,
 * `length_prefix.ts`) followed by the frame body. The length is checked against
 * `maxFrameBytes` (default 64 MiB) before anything is allocated for the body.
 *
 * Frame body layout (all integers little-endian):
 *
 * | offset   | size | content                                                          |
 * |----------|------|------------------------------------------------------------------|
 * | 0        | 1    | frame format version, `FRAME_VERSION` (= 1)                      |
 * | 1        | 4    | u32 header length `L`, 2 ≤ L ≤ maxHeaderBytes                    |
 * | 5        | L    | header: UTF-8 JSON object, `{"type": …, …fields, "tensors": […]}`|
 * | 5 + L    | rest | tensor payloads, concatenated in `tensors` order, no padding     |
 *
 * `tensors` is `[{"name": "hidden", "dtype": "f32"|"f16", "shape": [B, T, H]}]` (omitted
 * when the message has none). Each payload is `product(shape) × (4 | 2)` bytes of raw
 * little-endian f32 / f16, row-major; the payload sizes must add up to exactly the bytes
 * after the header. Shapes are checked against the bytes actually present before a tensor
 * is allocated. Before the header is parsed its nesting depth and number of values are bounded
 * (`HEADER_SHAPE`, json_shape.ts), so a hostile header costs one scan; it is then validated per
 * `type` (protocol_messages.ts), and errors show bounded previews of bad values (_validate.ts).
 * Any violation throws a `WireError` with code `BAD_FRAME` (or `TOO_LARGE`).
 * @module
 */
import { WireError } from "../errors.ts";
import { type MessageType, TENSOR_FIELDS, validateMessage, type WireMessage } from "./protocol_messages.ts";
import {
  dtypeSize,
  readTensorData,
  type Tensor,
  WIRE_DTYPES,
  type WireDType,
  writeTensorData,
} from "./tensor_codec.ts";
import { DEFAULT_WIRE_LIMITS, HEADER_SHAPE, MAX_TENSOR_RANK, type WireLimits } from "./wire_limits.ts";
import { checkJsonShape } from "./json_shape.ts";
import { bad, isObj } from "./_validate.ts";

export const FRAME_VERSION = 1;
const PREAMBLE = 5;
/** The shortest frame body `decodeFrame` can accept (the preamble and a two-byte header). */
export const MIN_FRAME_BYTES: number = PREAMBLE + 2;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function tooLarge(what: string, size: number, cap: number): WireError {
  return new WireError("TOO_LARGE", `${what} of ${size} bytes exceeds the cap of ${cap} bytes`, {
    hint: "send smaller chunks (split long prefills) or raise the frame cap on both sides",
    details: { size, cap },
  });
}

/** Encodes a message into one frame body (without the length prefix). */
export function encodeFrame(message: WireMessage, limits: WireLimits = DEFAULT_WIRE_LIMITS): Uint8Array {
  const fields = TENSOR_FIELDS[message.type];
  if (!fields) bad("type", "a known message type", message.type);
  const header: Record<string, unknown> = {};
  const tensors: Tensor[] = [];
  const descs: { name: string; dtype: WireDType; shape: readonly number[] }[] = [];
  for (const [k, v] of Object.entries(message)) {
    if (v === undefined) continue;
    if (fields.includes(k)) {
      const t = v as Tensor;
      tensors.push(t);
      descs.push({ name: k, dtype: t.dtype, shape: t.shape });
    } else {
      header[k] = v;
    }
  }
  if (descs.length) header.tensors = descs;
  const headerBytes = encoder.encode(JSON.stringify(header));
  if (headerBytes.byteLength > limits.maxHeaderBytes) {
    throw tooLarge("frame header", headerBytes.byteLength, limits.maxHeaderBytes);
  }
  let total = PREAMBLE + headerBytes.byteLength;
  for (const t of tensors) total += t.data.length * dtypeSize(t.dtype);
  if (total > limits.maxFrameBytes) throw tooLarge("frame", total, limits.maxFrameBytes);
  const out = new Uint8Array(total);
  out[0] = FRAME_VERSION;
  new DataView(out.buffer).setUint32(1, headerBytes.byteLength, true);
  out.set(headerBytes, PREAMBLE);
  let off = PREAMBLE + headerBytes.byteLength;
  for (const t of tensors) {
    const n = t.data.length * dtypeSize(t.dtype);
    writeTensorData(t, out.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** Decodes and validates one frame body (without the length prefix). Throws `WireError`. */
export function decodeFrame(body: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS): WireMessage {
  if (body.byteLength > limits.maxFrameBytes) throw tooLarge("frame", body.byteLength, limits.maxFrameBytes);
  if (body.byteLength < MIN_FRAME_BYTES) bad("frame", `at least ${MIN_FRAME_BYTES} bytes`, body.byteLength);
  if (body[0] !== FRAME_VERSION) bad("frame version", `${FRAME_VERSION}`, body[0]);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const headerLen = view.getUint32(1, true);
  if (headerLen > limits.maxHeaderBytes) throw tooLarge("frame header", headerLen, limits.maxHeaderBytes);
  if (headerLen < 2 || PREAMBLE + headerLen > body.byteLength) {
    bad("header length", `2..${body.byteLength - PREAMBLE} (the bytes present)`, headerLen);
  }
  const headerBytes = body.subarray(PREAMBLE, PREAMBLE + headerLen);
  // bounded before it is parsed: a deep or wide header costs a scan, not millions of objects
  checkJsonShape(headerBytes, HEADER_SHAPE, "frame header");
  let header: unknown;
  try {
    header = JSON.parse(decoder.decode(headerBytes));
  } catch (err) {
    throw new WireError("BAD_FRAME", `frame header is not valid UTF-8 JSON: ${(err as Error).message}`, {
      hint: "the peer sent a corrupt frame; check that both sides speak the same protocol version",
      cause: err,
    });
  }
  if (!isObj(header)) bad("header", "a JSON object", header);
  const type = header.type as MessageType;
  const allowed = Object.hasOwn(TENSOR_FIELDS, type as string)
    ? TENSOR_FIELDS[type]
    : bad("type", "a known message type", type);
  // Tensor descriptors: validate every one against the bytes present before allocating.
  const rawDescs = header.tensors ?? [];
  if (!Array.isArray(rawDescs) || rawDescs.length !== allowed.length) {
    bad("tensors", `a list of ${allowed.length} tensor descriptor(s) for ${type}`, rawDescs);
  }
  let off = PREAMBLE + headerLen;
  const available = body.byteLength - off;
  let needed = 0;
  const plan: { name: string; dtype: WireDType; shape: number[]; bytes: number }[] = [];
  for (let i = 0; i < rawDescs.length; i++) {
    const d = rawDescs[i];
    if (!isObj(d)) bad(`tensors[${i}]`, "an object {name, dtype, shape}", d);
    const name = d.name;
    if (typeof name !== "string" || !allowed.includes(name) || plan.some((p) => p.name === name)) {
      bad(`tensors[${i}].name`, `one of ${allowed.join("|")} (each once)`, name);
    }
    const dtype = d.dtype;
    if (typeof dtype !== "string" || !(WIRE_DTYPES as readonly string[]).includes(dtype)) {
      bad(`tensors[${i}].dtype`, `one of ${WIRE_DTYPES.join("|")}`, dtype);
    }
    const shape = d.shape;
    if (
      !Array.isArray(shape) || shape.length < 1 || shape.length > MAX_TENSOR_RANK ||
      !shape.every((x) => Number.isSafeInteger(x) && x >= 0 && x <= limits.maxFrameBytes)
    ) {
      bad(`tensors[${i}].shape`, `1..${MAX_TENSOR_RANK} non-negative integers`, shape);
    }
    let elements = 1;
    for (const x of shape as number[]) elements *= x;
    const bytes = elements * dtypeSize(dtype as WireDType);
    needed += bytes;
    if (!Number.isSafeInteger(needed) || needed > available) {
      bad(
        `tensors[${i}]`,
        `no larger than the ${available} payload bytes present`,
        `${bytes} bytes for [${shape}]`,
      );
    }
    plan.push({ name, dtype: dtype as WireDType, shape: shape as number[], bytes });
  }
  if (needed !== available) bad("frame", `exactly ${needed} tensor payload bytes`, available);
  const withTensors: Record<string, unknown> = { ...header };
  delete withTensors.tensors;
  for (const p of plan) {
    const data = readTensorData(body.subarray(off, off + p.bytes), p.dtype);
    off += p.bytes;
    withTensors[p.name] = { dtype: p.dtype, shape: p.shape, data } satisfies Tensor;
  }
  return validateMessage(withTensors);
}
