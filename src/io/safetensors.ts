/**
 * safetensors files (https://github.com/huggingface/safetensors), readable by Python's
 * `safetensors`, the Rust crate and JS readers.
 *
 * Layout: an 8-byte little-endian unsigned header size N, then N bytes of UTF-8 JSON
 * `{"__metadata__": {string: string}, "<name>": {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ...}` padded with spaces to a multiple of 8 bytes (as the Rust
 * crate does), then the byte buffer: every tensor's little-endian C-order elements at
 * `[begin, end)` relative to the buffer start, contiguous and without holes. The writer orders
 * tensors like the Rust crate (by its dtype order, larger alignment first, then by name); the
 * reader enforces the crate's validation rules (offsets contiguous from 0, sizes matching shapes,
 * buffer fully used).
 */
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import {
  type ArrayEntry,
  checkedEntries,
  checkHash,
  readArrayData,
  SequentialReader,
  type WrittenFile,
  writeArrayData,
  writeHashedFile,
} from './binary.js';
import { DTYPE_INFO, DTYPES, type DType, type NdArray, numElements } from './dtypes.js';
import type { ReadOptions } from './npy.js';

/** The Rust crate refuses headers larger than this. */
const MAX_HEADER_BYTES = 100_000_000;

/** Order of the Rust crate's `Dtype` enum (restricted to ours); it writes tensors in descending order. */
const RUST_DTYPE_ORDER: readonly DType[] = [
  'bool',
  'uint8',
  'int8',
  'int16',
  'uint16',
  'int32',
  'uint32',
  'float32',
  'float64',
  'int64',
  'uint64',
];

/** One tensor's entry in a safetensors header. */
export interface SafetensorsTensorInfo {
  dtype: DType;
  shape: number[];
  /** [begin, end) byte offsets relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

/** A parsed safetensors header. */
export interface SafetensorsHeader {
  /** Tensors by name (iterate sorted by `dataOffsets[0]` for file order). */
  tensors: Record<string, SafetensorsTensorInfo>;
  /** The `__metadata__` map (string → string), `{}` when absent. */
  metadata: Record<string, string>;
  /** Offset of the data buffer in the file (8 + N). */
  dataStart: number;
}

function normalise(tensors: Record<string, NdArray> | ArrayEntry[]): ArrayEntry[] {
  const entries = checkedEntries(
    tensors,
    'tensor name',
    (name) => name !== '' && name !== '__metadata__',
    'a non-empty string other than "__metadata__"',
  );
  // The Rust crate's order: by its Dtype enum (increasing alignment) descending, then by name.
  return entries.sort(
    (a, b) =>
      RUST_DTYPE_ORDER.indexOf(b.dtype) - RUST_DTYPE_ORDER.indexOf(a.dtype) ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

/** The header bytes (8-byte size + padded JSON) for `entries` (already in file order). */
export function encodeSafetensorsHeader(
  entries: ArrayEntry[],
  metadata: Record<string, string> = {},
): Uint8Array {
  // Built key by key: JSON.stringify of an object would move integer-like names to the front.
  const parts: string[] = [];
  const metaKeys = Object.keys(metadata).sort();
  for (const k of metaKeys) {
    if (typeof metadata[k] !== 'string') {
      throw new InvalidArgumentError(
        `metadata.${k}`,
        metadata[k],
        'a string (safetensors metadata is string → string)',
      );
    }
  }
  if (metaKeys.length > 0) {
    parts.push(
      `"__metadata__":{${metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`,
    );
  }
  let offset = 0;
  for (const e of entries) {
    const bytes = numElements(e.shape) * DTYPE_INFO[e.dtype].size;
    const info = {
      dtype: DTYPE_INFO[e.dtype].safetensors,
      shape: e.shape,
      data_offsets: [offset, offset + bytes],
    };
    parts.push(`${JSON.stringify(e.name)}:${JSON.stringify(info)}`);
    offset += bytes;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = json.byteLength + ((8 - (json.byteLength % 8)) % 8);
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength);
  return out;
}

/**
 * Write named tensors (NdArrays, or entries whose data may be producers) and string metadata to
 * `file` as safetensors, atomically. Returns size and sha256.
 */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, NdArray> | ArrayEntry[],
  metadata: Record<string, string> = {},
): Promise<WrittenFile> {
  const entries = normalise(tensors);
  const header = encodeSafetensorsHeader(entries, metadata);
  return writeHashedFile(file, async (writer) => {
    await writer.write(header);
    for (const e of entries) await writeArrayData(writer, e, e.data, e.name);
  });
}

async function readHeaderFrom(reader: SequentialReader): Promise<SafetensorsHeader> {
  const file = reader.file;
  if (reader.size < 8)
    throw new CorruptFileError(file, `truncated: ${reader.size} bytes is too short for safetensors`);
  const n = new DataView((await reader.read(8, 'header size')).buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    throw new CorruptFileError(file, `safetensors header size ${n} is too large`);
  if (Number(n) > reader.remaining) {
    throw new CorruptFileError(file, `truncated: header of ${n} bytes, only ${reader.remaining} remain`);
  }
  const text = Buffer.from(await reader.read(Number(n), 'header')).toString('utf8');
  if (!text.startsWith('{')) throw new CorruptFileError(file, 'safetensors header does not start with "{"');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new CorruptFileError(file, `safetensors header is not valid JSON (${(error as Error).message})`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    throw new CorruptFileError(file, 'safetensors header is not a JSON object');
  }
  const metadata: Record<string, string> = {};
  const list: Array<[string, SafetensorsTensorInfo]> = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!value || typeof value !== 'object' || Array.isArray(value)) {
        throw new CorruptFileError(file, '__metadata__ is not an object');
      }
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new CorruptFileError(file, `__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = DTYPES.find((d) => DTYPE_INFO[d].safetensors === info?.dtype);
    const offsets = info?.data_offsets;
    if (
      !dtype ||
      !Array.isArray(info.shape) ||
      info.shape.some((d) => !Number.isSafeInteger(d) || d < 0) ||
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      offsets.some((o) => !Number.isSafeInteger(o) || o < 0)
    ) {
      throw new CorruptFileError(file, `bad tensor entry ${JSON.stringify(name)}: ${JSON.stringify(value)}`);
    }
    list.push([name, { dtype, shape: info.shape as number[], dataOffsets: offsets as [number, number] }]);
  }
  list.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  let expected = 0;
  for (const [name, info] of list) {
    const [begin, end] = info.dataOffsets;
    if (begin !== expected || end < begin) {
      throw new CorruptFileError(
        file,
        `tensor ${JSON.stringify(name)}: data_offsets [${begin}, ${end}] leave a hole or overlap`,
      );
    }
    const bytes = numElements(info.shape) * DTYPE_INFO[info.dtype].size;
    if (end - begin !== bytes) {
      throw new CorruptFileError(
        file,
        `tensor ${JSON.stringify(name)}: data_offsets span ${end - begin} bytes, shape [${info.shape.join(', ')}] ${info.dtype} needs ${bytes}`,
      );
    }
    expected = end;
  }
  const have = reader.remaining;
  if (have < expected)
    throw new CorruptFileError(
      file,
      `truncated: the tensors need ${expected} data bytes, the file has ${have}`,
    );
  if (have > expected)
    throw new CorruptFileError(file, `${have - expected} unexpected bytes after the last tensor`);
  return { tensors: Object.fromEntries(list), metadata, dataStart: 8 + Number(n) };
}

/** Read and validate only the header of a safetensors file. */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const reader = await SequentialReader.open(file);
  try {
    return await readHeaderFrom(reader);
  } finally {
    await reader.close();
  }
}

/** Read all tensors and the metadata of a safetensors file, verifying it (and its sha256 if given). */
export async function readSafetensors(
  file: string,
  options: ReadOptions = {},
): Promise<{ tensors: Record<string, NdArray>; metadata: Record<string, string>; sha256: string }> {
  const reader = await SequentialReader.open(file, { hash: true });
  try {
    const header = await readHeaderFrom(reader);
    const tensors: Record<string, NdArray> = {};
    const inOrder = Object.entries(header.tensors).sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
    for (const [name, info] of inOrder) {
      const data = await readArrayData(reader, info, false, `tensor ${JSON.stringify(name)}`);
      tensors[name] = { dtype: info.dtype, shape: info.shape, data };
    }
    const sha256 = (await reader.finish())!;
    checkHash(file, sha256, options.sha256);
    return { tensors, metadata: header.metadata, sha256 };
  } finally {
    await reader.close();
  }
}
