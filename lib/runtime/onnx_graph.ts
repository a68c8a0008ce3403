/**
 * A small ONNX model writer: a protobuf encoder for the subset of onnx.proto the runtime needs
 * (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto) and a
 * `OnnxGraph` builder on top. onnxruntime is the validator: it refuses malformed models.
 * Tensor bytes are kept as references and copied once, into the final buffer.
 * @module
 */

/** ONNX TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10 } as const;
export type DataTypeId = typeof DataType[keyof typeof DataType];

/** Attribute values: wrap to say which ONNX attribute type is meant. */
export type Attr =
  | { kind: "f"; v: number }
  | { kind: "i"; v: number }
  | { kind: "s"; v: string }
  | { kind: "floats"; v: readonly number[] }
  | { kind: "ints"; v: readonly number[] };
export const attr = {
  f: (v: number): Attr => ({ kind: "f", v }),
  i: (v: number): Attr => ({ kind: "i", v }),
  s: (v: string): Attr => ({ kind: "s", v }),
  floats: (v: readonly number[]): Attr => ({ kind: "floats", v }),
  ints: (v: readonly number[]): Attr => ({ kind: "ints", v }),
};

// ------------------------------------------------------------------ protobuf writer

const enc = new TextEncoder();

/** A protobuf message under construction: a list of byte chunks and their total length. */
class Msg {
  readonly parts: Uint8Array[] = [];
  length = 0;
  #scratch: number[] = [];

  #flush(): void {
    if (this.#scratch.length) {
      const b = Uint8Array.from(this.#scratch);
      this.parts.push(b);
      this.length += b.length;
      this.#scratch = [];
    }
  }
  #varint(n: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(n));
    while (v >= 0x80n) {
      this.#scratch.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.#scratch.push(Number(v));
  }
  #smallVarint(n: number): void {
    if (n < 0 || !Number.isSafeInteger(n)) return this.#varint(n);
    while (n >= 0x80) {
      this.#scratch.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.#scratch.push(n);
  }
  #tag(field: number, wire: number): void {
    this.#smallVarint(field * 8 + wire);
  }
  int(field: number, n: number): this {
    this.#tag(field, 0);
    this.#smallVarint(n);
    return this;
  }
  float(field: number, x: number): this {
    this.#tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, x, true);
    this.#scratch.push(...b);
    return this;
  }
  bytes(field: number, data: Uint8Array): this {
    this.#tag(field, 2);
    this.#smallVarint(data.length);
    this.#flush();
    if (data.length) {
      this.parts.push(data);
      this.length += data.length;
    }
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, enc.encode(s));
  }
  msg(field: number, m: Msg): this {
    m.#flush();
    this.#tag(field, 2);
    this.#smallVarint(m.length);
    this.#flush();
    this.parts.push(...m.parts);
    this.length += m.length;
    return this;
  }
  finish(): Uint8Array {
    this.#flush();
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
  done(): this {
    this.#flush();
    return this;
  }
}

type TensorData = Float32Array | Int8Array | Uint8Array | Int32Array | BigInt64Array | Uint16Array;

interface Initializer {
  name: string;
  type: DataTypeId;
  dims: readonly number[];
  data: TensorData;
}

interface NodeSpec {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  attrs: Record<string, Attr>;
  domain: string;
  name: string;
}

interface ValueInfo {
  name: string;
  type: DataTypeId;
  dims: readonly (number | string)[];
}

function tensorBytes(t: Initializer): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** A TensorProto; with `external`, the data lives in an in-memory external file of that name. */
function tensorMsg(t: Initializer, external?: string): Msg {
  const m = new Msg();
  for (const d of t.dims) m.int(1, d);
  m.int(2, t.type);
  m.string(8, t.name);
  if (external) {
    const entry = (k: string, v: string) => new Msg().string(1, k).string(2, v).done();
    m.msg(13, entry("location", external));
    m.msg(13, entry("offset", "0"));
    m.msg(13, entry("length", String(t.data.byteLength)));
    m.int(14, 1);
  } else {
    m.bytes(9, tensorBytes(t));
  }
  return m.done();
}

/** Model bytes plus in-memory external data files (for onnxruntime's `externalData` option). */
export interface EncodedModel {
  model: Uint8Array;
  externalData: { path: string; data: Uint8Array }[];
}

function valueInfoMsg(v: ValueInfo): Msg {
  const shape = new Msg();
  for (const d of v.dims) {
    const dim = new Msg();
    if (typeof d === "number") dim.int(1, d);
    else dim.string(2, d);
    shape.msg(1, dim.done());
  }
  const tensorType = new Msg().int(1, v.type).msg(2, shape.done()).done();
  const type = new Msg().msg(1, tensorType).done();
  return new Msg().string(1, v.name).msg(2, type).done();
}

function attrMsg(name: string, a: Attr): Msg {
  const m = new Msg().string(1, name);
  switch (a.kind) {
    case "f":
      m.float(2, a.v).int(20, 1);
      break;
    case "i":
      m.int(3, a.v).int(20, 2);
      break;
    case "s":
      m.string(4, a.v).int(20, 3);
      break;
    case "floats":
      for (const x of a.v) m.float(7, x);
      m.int(20, 6);
      break;
    case "ints":
      for (const x of a.v) m.int(8, x);
      m.int(20, 7);
      break;
  }
  return m.done();
}

function nodeMsg(n: NodeSpec): Msg {
  const m = new Msg();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name);
  m.string(4, n.op);
  for (const [k, a] of Object.entries(n.attrs)) m.msg(5, attrMsg(k, a));
  if (n.domain) m.string(7, n.domain);
  return m.done();
}

// ------------------------------------------------------------------ graph builder

/** Builds one ONNX graph; `toBytes()` gives a ModelProto that onnxruntime can load. */
export class OnnxGraph {
  readonly #nodes: NodeSpec[] = [];
  readonly #inits: Initializer[] = [];
  readonly #inputs: ValueInfo[] = [];
  readonly #outputs: ValueInfo[] = [];
  readonly #constCache = new Map<string, string>();
  #counter = 0;

  constructor(readonly name: string) {}

  /** A fresh unique value name with a readable stem. */
  fresh(stem: string): string {
    return `${stem}_${this.#counter++}`;
  }

  input(name: string, type: DataTypeId, dims: readonly (number | string)[]): string {
    this.#inputs.push({ name, type, dims });
    return name;
  }

  output(name: string, type: DataTypeId, dims: readonly (number | string)[]): string {
    this.#outputs.push({ name, type, dims });
    return name;
  }

  /** Adds a weight/constant tensor; the data is referenced, not copied, until `toBytes()`. */
  initializer(stem: string, data: TensorData, dims: readonly number[], type?: DataTypeId): string {
    const t = type ??
      (data instanceof Float32Array
        ? DataType.FLOAT
        : data instanceof Int8Array
        ? DataType.INT8
        : data instanceof Uint8Array
        ? DataType.UINT8
        : data instanceof Int32Array
        ? DataType.INT32
        : data instanceof BigInt64Array
        ? DataType.INT64
        : DataType.FLOAT16);
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`initializer ${stem}: ${data.length} values for dims [${dims}]`);
    const name = this.fresh(stem);
    this.#inits.push({ name, type: t, dims, data });
    return name;
  }

  /** A small int64 constant (deduplicated). `dims` default: 1-D. */
  i64(values: readonly number[], dims?: readonly number[]): string {
    const key = `i64:${values.join(",")}:${dims ?? "v"}`;
    let name = this.#constCache.get(key);
    if (!name) {
      name = this.initializer("c", BigInt64Array.from(values, (v) => BigInt(v)), dims ?? [values.length]);
      this.#constCache.set(key, name);
    }
    return name;
  }

  /** A small float constant (deduplicated). `dims` default: scalar when one value, else 1-D. */
  f32(values: readonly number[], dims?: readonly number[]): string {
    const d = dims ?? (values.length === 1 ? [] : [values.length]);
    const key = `f32:${values.join(",")}:${d}`;
    let name = this.#constCache.get(key);
    if (!name) {
      name = this.initializer("c", Float32Array.from(values), d);
      this.#constCache.set(key, name);
    }
    return name;
  }

  /**
   * Appends `other`'s nodes and initializers with every value name passed through `rename` (its
   * declared inputs and outputs are not copied: declare them here). Initializer data is shared,
   * not copied.
   */
  embed(other: OnnxGraph, rename: (name: string) => string): void {
    const r = (n: string) => n === "" ? "" : rename(n);
    for (const n of other.#nodes) {
      this.#nodes.push({ ...n, inputs: n.inputs.map(r), outputs: n.outputs.map(r), name: rename(n.name) });
    }
    for (const t of other.#inits) this.#inits.push({ ...t, name: rename(t.name) });
  }

  /** The initializers of rank 2 (linear layers' matrices), in the order they were added. */
  matrices(): { name: string; type: DataTypeId; dims: readonly number[]; data: TensorData }[] {
    return this.#inits.filter((t) => t.dims.length === 2).map((t) => ({ ...t }));
  }

  /** Adds a node; returns its output names (fresh ones when a count is given). */
  node(
    op: string,
    inputs: readonly string[],
    outputs: number | readonly string[] = 1,
    attrs: Record<string, Attr> = {},
    domain = "",
  ): string[] {
    const outs = typeof outputs === "number"
      ? Array.from({ length: outputs }, () => this.fresh(op.toLowerCase()))
      : [...outputs];
    this.#nodes.push({ op, inputs, outputs: outs, attrs, domain, name: this.fresh(`n_${op}`) });
    return outs;
  }

  /** Single-output shorthand of `node`. */
  op(op: string, inputs: readonly string[], attrs: Record<string, Attr> = {}, domain = ""): string {
    return this.node(op, inputs, 1, attrs, domain)[0];
  }

  /** Bytes of initializers (for memory accounting). */
  get weightBytes(): number {
    return this.#inits.reduce((n, t) => n + t.data.byteLength, 0);
  }

  /** Encodes the ModelProto with every weight inline (protobuf limits this to < 2 GiB). */
  toBytes(options: { irVersion?: number; opset?: number } = {}): Uint8Array {
    return this.encode({ ...options, externalAbove: Infinity }).model;
  }

  /**
   * Encodes the ModelProto; initializers of at least `externalAbove` bytes (default 1 MiB when
   * the weights exceed 1.5 GiB in total, else none) go to in-memory external data files, so
   * models above protobuf's 2 GiB limit load. The data is referenced, not copied.
   */
  encode(options: { irVersion?: number; opset?: number; externalAbove?: number } = {}): EncodedModel {
    const threshold = options.externalAbove ?? (this.weightBytes > 1.5 * 2 ** 30 ? 2 ** 20 : Infinity);
    const externalData: EncodedModel["externalData"] = [];
    const graph = new Msg();
    for (const n of this.#nodes) graph.msg(1, nodeMsg(n));
    graph.string(2, this.name);
    for (const t of this.#inits) {
      if (t.data.byteLength >= threshold) {
        const path = `${t.name}.bin`;
        externalData.push({ path, data: tensorBytes(t) });
        graph.msg(5, tensorMsg(t, path));
      } else {
        graph.msg(5, tensorMsg(t));
      }
    }
    for (const v of this.#inputs) graph.msg(11, valueInfoMsg(v));
    for (const v of this.#outputs) graph.msg(12, valueInfoMsg(v));
    graph.done();
    const model = new Msg()
      .int(1, options.irVersion ?? 10)
      .string(2, "plumise")
      .string(3, "1")
      .msg(7, graph)
      .msg(8, new Msg().string(1, "").int(2, options.opset ?? 21).done())
      .msg(8, new Msg().string(1, "com.microsoft").int(2, 1).done());
    return { model: model.finish(), externalData };
  }
}
