/**
 * A minimal ONNX reader: the graph's nodes (op type, name, inputs, outputs, the scalar and list
 * attributes) and its initialisers (name, dims, data), decoded from the protobuf wire format over
 * the field numbers of onnx.proto (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto), with no
 * dependency. Enough to take the weights out of an exported encoder; it runs nothing.
 *
 * Field numbers read (onnx.proto, IR versions 3–10):
 *   ModelProto      ir_version=1 graph=7 opset_import=8
 *   GraphProto      node=1 name=2 initializer=5 input=11 output=12
 *   NodeProto       input=1 output=2 name=3 op_type=4 attribute=5 domain=7
 *   AttributeProto  name=1 f=2 i=3 s=4 floats=7 ints=8 (packed or not)
 *   TensorProto     dims=1 data_type=2 float_data=4 int32_data=5 int64_data=7 name=8 raw_data=9
 *                   double_data=10 external_data=13 data_location=14
 *   StringStringEntryProto key=1 value=2
 *
 * Initialiser data: float32, float16 and float64 tensors are returned as float32 (from raw_data,
 * float_data / int32_data (float16 bits) / double_data); int32 and int64 tensors as numbers; other
 * types carry no data (`data: null`, the type named in `dataType`). External data
 * (`data_location = EXTERNAL`) is read from the file its `location` names, which must stay inside
 * the ONNX file's directory.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CorruptFileError } from '../errors.js';
import { resolveInside } from '../util/index.js';

/** TensorProto.DataType names by value (the ones a reader might meet). */
export const ONNX_DATA_TYPES: Readonly<Record<number, string>> = Object.freeze({
  1: 'FLOAT',
  2: 'UINT8',
  3: 'INT8',
  4: 'UINT16',
  5: 'INT16',
  6: 'INT32',
  7: 'INT64',
  8: 'STRING',
  9: 'BOOL',
  10: 'FLOAT16',
  11: 'DOUBLE',
  12: 'UINT32',
  13: 'UINT64',
  16: 'BFLOAT16',
});

/** One initialiser of the graph. */
export interface OnnxTensor {
  name: string;
  dims: number[];
  /** TensorProto.DataType name ('FLOAT', 'INT64', …; 'TYPE_<n>' for an unknown value). */
  dataType: string;
  /** float32 for FLOAT/FLOAT16/DOUBLE, numbers for INT32/INT64, null for any other type. */
  data: Float32Array | number[] | null;
}

/** An attribute value (the kinds a weight import looks at; graphs and tensors are skipped). */
export type OnnxAttribute = number | string | number[];

/** One node of the graph. */
export interface OnnxNode {
  opType: string;
  name: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, OnnxAttribute>;
}

/** What {@link readOnnxModel} returns. */
export interface OnnxModel {
  file: string;
  irVersion: number;
  graphName: string;
  nodes: OnnxNode[];
  /** Initialisers by name, in file order. */
  initializers: Map<string, OnnxTensor>;
  inputs: string[];
  outputs: string[];
}

/** Reads protobuf wire format from a byte range; errors name the file. */
class ProtoReader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly file: string,
    start = 0,
    readonly end = bytes.length,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  fail(what: string): never {
    throw new CorruptFileError(this.file, `not a valid ONNX protobuf: ${what} at byte ${this.pos}`);
  }

  /** A varint as a number (two's complement int64 values, e.g. -1, come back negative). */
  varint(): number {
    let lo = 0;
    let shift = 0;
    let byte = 0x80;
    // Low 28 bits as a plain number, the rest through BigInt only when present.
    while (shift < 28 && byte & 0x80) {
      if (this.pos >= this.end) this.fail('truncated varint');
      byte = this.bytes[this.pos++]!;
      lo |= (byte & 0x7f) << shift;
      shift += 7;
    }
    if (!(byte & 0x80)) return lo >>> 0;
    let value = BigInt(lo >>> 0);
    while (byte & 0x80) {
      if (this.pos >= this.end || shift > 63) this.fail('truncated or overlong varint');
      byte = this.bytes[this.pos++]!;
      value |= BigInt(byte & 0x7f) << BigInt(shift);
      shift += 7;
    }
    return Number(BigInt.asIntN(64, value));
  }

  /** The next field's number and wire type, or null at the end. */
  tag(): { field: number; wire: number } | null {
    if (this.done) return null;
    const t = this.varint();
    return { field: Math.floor(t / 8), wire: t & 7 };
  }

  /** A length-delimited field's [start, end). */
  span(): [number, number] {
    const n = this.varint();
    const start = this.pos;
    if (n < 0 || start + n > this.end) this.fail(`length ${n} beyond the enclosing message`);
    this.pos = start + n;
    return [start, start + n];
  }

  sub(): ProtoReader {
    const [s, e] = this.span();
    return new ProtoReader(this.bytes, this.file, s, e);
  }

  string(): string {
    const [s, e] = this.span();
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset + s, e - s).toString('utf8');
  }

  float32(): number {
    if (this.pos + 4 > this.end) this.fail('truncated fixed32');
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  float64(): number {
    if (this.pos + 8 > this.end) this.fail('truncated fixed64');
    const v = new DataView(this.bytes.buffer, this.bytes.byteOffset + this.pos, 8).getFloat64(0, true);
    this.pos += 8;
    return v;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.pos += 8;
    else if (wire === 2) this.span();
    else if (wire === 5) this.pos += 4;
    else this.fail(`unsupported wire type ${wire}`);
    if (this.pos > this.end) this.fail('truncated field');
  }

  /** Repeated varints: packed (wire 2) or one per tag (wire 0). */
  varints(wire: number, into: number[]): void {
    if (wire === 0) {
      into.push(this.varint());
      return;
    }
    if (wire !== 2) this.fail(`wire type ${wire} for a repeated integer`);
    const r = this.sub();
    while (!r.done) into.push(r.varint());
  }

  /** Repeated fixed-width floats: packed (wire 2) or one per tag (wire 5 / 1). */
  floats(wire: number, into: number[], width: 4 | 8): void {
    if (wire === (width === 4 ? 5 : 1)) {
      into.push(width === 4 ? this.float32() : this.float64());
      return;
    }
    if (wire !== 2) this.fail(`wire type ${wire} for a repeated float`);
    const r = this.sub();
    while (!r.done) into.push(width === 4 ? r.float32() : r.float64());
  }
}

/** IEEE half-precision bits → number. */
function halfToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

interface RawTensor {
  name: string;
  dims: number[];
  dataType: number;
  raw: [number, number] | null;
  floatData: number[];
  int32Data: number[];
  int64Data: number[];
  doubleData: number[];
  external: Record<string, string>;
  location: number;
}

function readTensor(r: ProtoReader): RawTensor {
  const t: RawTensor = {
    name: '',
    dims: [],
    dataType: 0,
    raw: null,
    floatData: [],
    int32Data: [],
    int64Data: [],
    doubleData: [],
    external: {},
    location: 0,
  };
  for (let tag = r.tag(); tag; tag = r.tag()) {
    const { field, wire } = tag;
    if (field === 1) r.varints(wire, t.dims);
    else if (field === 2 && wire === 0) t.dataType = r.varint();
    else if (field === 4) r.floats(wire, t.floatData, 4);
    else if (field === 5) r.varints(wire, t.int32Data);
    else if (field === 7) r.varints(wire, t.int64Data);
    else if (field === 8 && wire === 2) t.name = r.string();
    else if (field === 9 && wire === 2) t.raw = r.span();
    else if (field === 10) r.floats(wire, t.doubleData, 8);
    else if (field === 13 && wire === 2) {
      const e = r.sub();
      let key = '';
      let value = '';
      for (let et = e.tag(); et; et = e.tag()) {
        if (et.field === 1 && et.wire === 2) key = e.string();
        else if (et.field === 2 && et.wire === 2) value = e.string();
        else e.skip(et.wire);
      }
      t.external[key] = value;
    } else if (field === 14 && wire === 0) t.location = r.varint();
    else r.skip(wire);
  }
  return t;
}

function readAttribute(r: ProtoReader): [string, OnnxAttribute | undefined] {
  let name = '';
  let value: OnnxAttribute | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  for (let tag = r.tag(); tag; tag = r.tag()) {
    const { field, wire } = tag;
    if (field === 1 && wire === 2) name = r.string();
    else if (field === 2 && wire === 5) value = r.float32();
    else if (field === 3 && wire === 0) value = r.varint();
    else if (field === 4 && wire === 2) value = r.string();
    else if (field === 7) r.floats(wire, floats, 4);
    else if (field === 8) r.varints(wire, ints);
    else r.skip(wire);
  }
  if (floats.length > 0) value = floats;
  if (ints.length > 0) value = ints;
  return [name, value];
}

function readNode(r: ProtoReader): OnnxNode {
  const node: OnnxNode = { opType: '', name: '', domain: '', inputs: [], outputs: [], attributes: {} };
  for (let tag = r.tag(); tag; tag = r.tag()) {
    const { field, wire } = tag;
    if (field === 1 && wire === 2) node.inputs.push(r.string());
    else if (field === 2 && wire === 2) node.outputs.push(r.string());
    else if (field === 3 && wire === 2) node.name = r.string();
    else if (field === 4 && wire === 2) node.opType = r.string();
    else if (field === 7 && wire === 2) node.domain = r.string();
    else if (field === 5 && wire === 2) {
      const [name, value] = readAttribute(r.sub());
      if (value !== undefined) node.attributes[name] = value;
    } else r.skip(wire);
  }
  return node;
}

function valueInfoName(r: ProtoReader): string {
  for (let tag = r.tag(); tag; tag = r.tag()) {
    if (tag.field === 1 && tag.wire === 2) return r.string();
    r.skip(tag.wire);
  }
  return '';
}

/** Element count of `dims`, checked against the protobuf (no negative or absurd dims). */
function elementCount(file: string, t: RawTensor): number {
  let n = 1;
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new CorruptFileError(
        file,
        `initialiser ${JSON.stringify(t.name)} has dims [${t.dims.join(', ')}]`,
      );
    }
    n *= d;
  }
  return n;
}

/** Bytes per element of the types whose data is decoded. */
const ELEMENT_BYTES: Readonly<Record<number, number>> = { 1: 4, 6: 4, 7: 8, 10: 2, 11: 8 };

function decodeRaw(bytes: Uint8Array, dataType: number, n: number): Float32Array | number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dataType === 1) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  }
  if (dataType === 10) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToNumber(view.getUint16(i * 2, true));
    return out;
  }
  if (dataType === 11) {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat64(i * 8, true);
    return out;
  }
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++)
    out[i] = dataType === 6 ? view.getInt32(i * 4, true) : Number(view.getBigInt64(i * 8, true));
  return out;
}

async function tensorData(
  file: string,
  bytes: Uint8Array,
  t: RawTensor,
): Promise<Float32Array | number[] | null> {
  const n = elementCount(file, t);
  const width = ELEMENT_BYTES[t.dataType];
  if (width === undefined) return null;
  const where = `initialiser ${JSON.stringify(t.name)}`;
  if (t.location === 1) {
    const location = t.external.location;
    const dir = path.dirname(file);
    const dataFile = resolveInside(dir, location, `${where}: external data location`, file, {
      basename: false,
    });
    const offset = Number(t.external.offset ?? 0);
    const length = t.external.length !== undefined ? Number(t.external.length) : n * width;
    if (!Number.isSafeInteger(offset) || offset < 0 || length !== n * width) {
      throw new CorruptFileError(
        file,
        `${where}: external data offset ${t.external.offset} / length ${t.external.length} do not fit dims [${t.dims.join(', ')}]`,
      );
    }
    const handle = await fs.open(dataFile, 'r').catch((error: NodeJS.ErrnoException) => {
      throw new CorruptFileError(
        file,
        `${where}: its external data file ${dataFile} cannot be read (${error.code})`,
      );
    });
    try {
      const buffer = new Uint8Array(length);
      const { bytesRead } = await handle.read(buffer, 0, length, offset);
      if (bytesRead !== length) {
        throw new CorruptFileError(
          dataFile,
          `truncated: ${where} needs bytes [${offset}, ${offset + length})`,
        );
      }
      return decodeRaw(buffer, t.dataType, n);
    } finally {
      await handle.close();
    }
  }
  if (t.raw) {
    const [s, e] = t.raw;
    if (e - s !== n * width) {
      throw new CorruptFileError(
        file,
        `${where}: raw_data holds ${e - s} bytes, dims [${t.dims.join(', ')}] of ${ONNX_DATA_TYPES[t.dataType]} need ${n * width}`,
      );
    }
    return decodeRaw(bytes.subarray(s, e), t.dataType, n);
  }
  const typed =
    t.dataType === 1
      ? t.floatData
      : t.dataType === 11
        ? t.doubleData
        : t.dataType === 7
          ? t.int64Data
          : t.int32Data; // INT32, and FLOAT16 as its bit patterns
  if (typed.length !== n) {
    throw new CorruptFileError(
      file,
      `${where}: ${typed.length} stored values for dims [${t.dims.join(', ')}] (${n} elements)`,
    );
  }
  if (t.dataType === 10) return Float32Array.from(typed, halfToNumber);
  if (t.dataType === 1 || t.dataType === 11) return Float32Array.from(typed);
  return typed;
}

/**
 * Read an ONNX model file: its nodes and its initialisers with their data (see the module
 * comment for the types decoded). CorruptFileError naming the file for anything that is not a
 * well-formed ModelProto with a graph.
 */
export async function readOnnxModel(file: string): Promise<OnnxModel> {
  const bytes = await fs.readFile(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') throw new CorruptFileError(file, 'missing');
    throw error;
  });
  const top = new ProtoReader(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), file);
  let irVersion = 0;
  let graph: ProtoReader | null = null;
  for (let tag = top.tag(); tag; tag = top.tag()) {
    if (tag.field === 1 && tag.wire === 0) irVersion = top.varint();
    else if (tag.field === 7 && tag.wire === 2) graph = top.sub();
    else top.skip(tag.wire);
  }
  if (!graph) throw new CorruptFileError(file, 'not an ONNX model: no graph (ModelProto field 7)');
  const model: OnnxModel = {
    file,
    irVersion,
    graphName: '',
    nodes: [],
    initializers: new Map(),
    inputs: [],
    outputs: [],
  };
  const raws: RawTensor[] = [];
  for (let tag = graph.tag(); tag; tag = graph.tag()) {
    const { field, wire } = tag;
    if (field === 1 && wire === 2) model.nodes.push(readNode(graph.sub()));
    else if (field === 2 && wire === 2) model.graphName = graph.string();
    else if (field === 5 && wire === 2) raws.push(readTensor(graph.sub()));
    else if (field === 11 && wire === 2) model.inputs.push(valueInfoName(graph.sub()));
    else if (field === 12 && wire === 2) model.outputs.push(valueInfoName(graph.sub()));
    else graph.skip(wire);
  }
  for (const t of raws) {
    if (model.initializers.has(t.name)) {
      throw new CorruptFileError(file, `two initialisers are named ${JSON.stringify(t.name)}`);
    }
    model.initializers.set(t.name, {
      name: t.name,
      dims: t.dims,
      dataType: ONNX_DATA_TYPES[t.dataType] ?? `TYPE_${t.dataType}`,
      data: await tensorData(file, top.bytes, t),
    });
  }
  return model;
}
