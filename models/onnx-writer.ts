/**
 * A minimal, dependency-free ONNX writer: protobuf wire encoding over the field numbers of
 * onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto), enough to express small
 * inference graphs with float32 / int64 initialisers. Used by the tiny-model generators in this
 * folder; the output is byte-for-byte deterministic (fields are written in a fixed order, floats
 * are stored little-endian as raw_data).
 *
 * Field numbers used (onnx.proto, IR version 8):
 *   ModelProto      ir_version=1 producer_name=2 producer_version=3 doc_string=6 graph=7 opset_import=8
 *   OperatorSetId   domain=1 version=2
 *   GraphProto      node=1 name=2 initializer=5 doc_string=10 input=11 output=12
 *   NodeProto       input=1 output=2 name=3 op_type=4 attribute=5
 *   AttributeProto  name=1 f=2 i=3 s=4 floats=7 ints=8 type=20
 *   TensorProto     dims=1 data_type=2 float_data=4 name=8 raw_data=9 external_data=13 data_location=14
 *   StringStringEntryProto key=1 value=2
 *   ValueInfoProto  name=1 type=2;  TypeProto tensor_type=1;  TypeProto.Tensor elem_type=1 shape=2
 *   TensorShapeProto dim=1;  Dimension dim_value=1 dim_param=2
 */

/** TensorProto.DataType values. */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DataType = { FLOAT: 1, INT64: 7 } as const;

/** AttributeProto.AttributeType values. */
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

/** Growable byte buffer with protobuf wire-format primitives. */
class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  /** Varint of a non-negative or negative integer (negatives as 10-byte two's complement). */
  varint(value: number | bigint): void {
    let v = BigInt.asUintN(64, BigInt(value));
    const out: number[] = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v !== 0n) byte |= 0x80;
      out.push(byte);
    } while (v !== 0n);
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wireType: 0 | 2 | 5): void {
    this.varint((field << 3) | wireType);
  }

  int(field: number, value: number | bigint): void {
    this.tag(field, 0);
    this.varint(value);
  }

  float(field: number, value: number): void {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, 2);
    this.varint(value.length);
    this.push(value);
  }

  string(field: number, value: string): void {
    this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    build(inner);
    this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let offset = 0;
    for (const c of this.chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    return out;
  }
}

/** An attribute value: number (float unless `int` is used), int, string, float list or int list. */
export type AttributeValue =
  | { float: number }
  | { int: number }
  | { string: string }
  | { floats: number[] }
  | { ints: number[] };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  attributes?: Record<string, AttributeValue>;
}

export interface OnnxInitializer {
  name: string;
  dims: number[];
  /** float32 data (FLOAT) or int64 values as numbers (INT64). */
  data: Float32Array | number[];
  dataType: (typeof DataType)[keyof typeof DataType];
  /**
   * How a FLOAT tensor's values are stored: 'raw' (raw_data, the default), 'float_data' (packed
   * float_data), or in an external file (`location` relative to the model file, at `offset`; the
   * caller writes that file). The alternatives exist to test readers.
   */
  storage?: 'raw' | 'float_data' | { location: string; offset: number };
}

export interface OnnxValueInfo {
  name: string;
  elemType: (typeof DataType)[keyof typeof DataType];
  /** Each dimension: a fixed size or a symbolic name ('batch', 'sequence'). */
  shape: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  opset: number;
  irVersion: number;
  producer: string;
  docString?: string;
}

/** A float32 initialiser. */
export function floatTensor(name: string, dims: number[], data: Float32Array): OnnxInitializer {
  const size = dims.reduce((a, b) => a * b, 1);
  if (data.length !== size) throw new Error(`${name}: ${data.length} values for dims [${dims}]`);
  return { name, dims, data, dataType: DataType.FLOAT };
}

/** An int64 initialiser (values must be safe integers). */
export function int64Tensor(name: string, dims: number[], data: number[]): OnnxInitializer {
  return { name, dims, data, dataType: DataType.INT64 };
}

function writeTensor(w: ProtoWriter, t: OnnxInitializer): void {
  for (const d of t.dims) w.int(1, d);
  w.int(2, t.dataType);
  if (t.dataType === DataType.FLOAT && t.storage !== undefined && t.storage !== 'raw') {
    const f = t.data as Float32Array;
    if (t.storage === 'float_data') {
      const packed = new Uint8Array(f.length * 4);
      const view = new DataView(packed.buffer);
      for (let i = 0; i < f.length; i++) view.setFloat32(i * 4, f[i]!, true);
      w.bytes(4, packed);
      w.string(8, t.name);
    } else {
      w.string(8, t.name);
      const entries: Array<[string, string]> = [
        ['location', t.storage.location],
        ['offset', String(t.storage.offset)],
        ['length', String(f.length * 4)],
      ];
      for (const [key, value] of entries) {
        w.message(13, (e) => {
          e.string(1, key);
          e.string(2, value);
        });
      }
      w.int(14, 1);
    }
    return;
  }
  w.string(8, t.name);
  let raw: Uint8Array;
  if (t.dataType === DataType.FLOAT) {
    const f = t.data as Float32Array;
    raw = new Uint8Array(f.length * 4);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < f.length; i++) view.setFloat32(i * 4, f[i]!, true);
  } else {
    const v = t.data as number[];
    raw = new Uint8Array(v.length * 8);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < v.length; i++) view.setBigInt64(i * 8, BigInt(v[i]!), true);
  }
  w.bytes(9, raw);
}

function writeAttribute(w: ProtoWriter, name: string, value: AttributeValue): void {
  w.string(1, name);
  if ('float' in value) {
    w.float(2, value.float);
    w.int(20, AttributeType.FLOAT);
  } else if ('int' in value) {
    w.int(3, value.int);
    w.int(20, AttributeType.INT);
  } else if ('string' in value) {
    w.string(4, value.string);
    w.int(20, AttributeType.STRING);
  } else if ('floats' in value) {
    for (const f of value.floats) w.float(7, f);
    w.int(20, AttributeType.FLOATS);
  } else {
    for (const i of value.ints) w.int(8, i);
    w.int(20, AttributeType.INTS);
  }
}

function writeValueInfo(w: ProtoWriter, v: OnnxValueInfo): void {
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) {
          shape.message(1, (dim) => {
            if (typeof d === 'number') dim.int(1, d);
            else dim.string(2, d);
          });
        }
      });
    }),
  );
}

/** Serialise a graph to ONNX ModelProto bytes. */
export function encodeModel(g: OnnxGraph): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, g.irVersion);
  w.string(2, g.producer);
  w.string(3, '1');
  if (g.docString) w.string(6, g.docString);
  w.message(7, (graph) => {
    g.nodes.forEach((node, index) => {
      graph.message(1, (n) => {
        for (const i of node.inputs) n.string(1, i);
        for (const o of node.outputs) n.string(2, o);
        n.string(3, node.name ?? `${node.op}_${index}`);
        n.string(4, node.op);
        for (const [name, value] of Object.entries(node.attributes ?? {})) {
          n.message(5, (a) => writeAttribute(a, name, value));
        }
      });
    });
    graph.string(2, g.name);
    for (const t of g.initializers) graph.message(5, (m) => writeTensor(m, t));
    for (const v of g.inputs) graph.message(11, (m) => writeValueInfo(m, v));
    for (const v of g.outputs) graph.message(12, (m) => writeValueInfo(m, v));
  });
  w.message(8, (op) => {
    op.string(1, '');
    op.int(2, g.opset);
  });
  return w.finish();
}

/**
 * Deterministic pseudo-random numbers for weights (splitmix32 → xorshift-free, integer-only, so
 * every platform produces identical bytes). `normal()` is the Irwin–Hall approximation
 * (sum of 12 uniforms − 6): exact arithmetic, no transcendental functions.
 */
export class WeightRng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Approximately N(0, 1) (Irwin–Hall, 12 terms). */
  normal(): number {
    let s = 0;
    for (let i = 0; i < 12; i++) s += this.uniform();
    return s - 6;
  }

  /** Float32Array of n draws from approximately N(0, std²). */
  normalArray(n: number, std: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }
}

/**
 * Write a generated model's files (path relative to the model directory → bytes) into `outDir`:
 * built in a temporary sibling, then swapped in, so a half-written model directory never exists.
 */
export function writeModelFiles(outDir: string, files: Iterable<[string, Uint8Array | string]>): void {
  const tmp = `${outDir}.tmp-${process.pid}`;
  const old = `${tmp}.old`;
  rmSync(tmp, { recursive: true, force: true });
  for (const [rel, bytes] of files) {
    mkdirSync(dirname(join(tmp, rel)), { recursive: true });
    writeFileSync(join(tmp, rel), bytes);
  }
  mkdirSync(dirname(outDir), { recursive: true });
  // The previous directory is moved aside, not deleted, until the new one is in place.
  const existed = existsSync(outDir);
  if (existed) renameSync(outDir, old);
  renameSync(tmp, outDir);
  if (existed) rmSync(old, { recursive: true, force: true });
}

/** Generate a model's files, write them into `outDir` and list them with their sizes. */
export function writeAndList(outDir: string, files: Map<string, Uint8Array | string>): void {
  writeModelFiles(outDir, files);
  for (const [rel, bytes] of files) console.log(`${join(outDir, rel)}  ${bytes.length} bytes`);
}

/** Repository root (this file lives in <root>/models/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
