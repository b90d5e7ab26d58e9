/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0; see numpy/lib/format.py).
 *
 * Layout: the magic `\x93NUMPY`, two version bytes, the header length (uint16 LE for 1.0,
 * uint32 LE for 2.0/3.0), then an ASCII Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and a final
 * newline so that the data start at a multiple of 64 bytes, then the raw elements in C order.
 * The writer produces exactly the bytes `numpy.save` (NumPy 2.x) writes for the same array,
 * including the spare spaces NumPy reserves to grow the first axis; it picks version 1.0 unless
 * the header needs 2.0.
 */
import { CorruptFileError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import {
  type ArraySource,
  checkHash,
  type HashingWriter,
  readArrayData,
  SequentialReader,
  type WrittenFile,
  writeArrayData,
  writeHashedFile,
} from './binary.js';
import {
  type ArraySpec,
  assertNdArray,
  assertShape,
  DTYPE_INFO,
  DTYPES,
  type DType,
  isDType,
  type NdArray,
  numElements,
} from './dtypes.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** NumPy aligns the start of the data to this many bytes. */
const ARRAY_ALIGN = 64;
/** NumPy's spare header space for growing the first axis in place. */
const GROWTH_AXIS_MAX_DIGITS = 21;

/** What an `.npy` header says, and where the data start. */
export interface NpyHeader extends ArraySpec {
  /** Format version, e.g. [1, 0]. */
  version: [number, number];
  /** Offset of the first data byte (header included). */
  dataOffset: number;
  /** Data size in bytes (`prod(shape) * itemsize`). */
  dataBytes: number;
  /** True when the file stores big-endian elements (converted on reading). */
  bigEndian: boolean;
}

function pythonShape(shape: readonly number[]): string {
  if (shape.length === 0) return '()';
  if (shape.length === 1) return `(${shape[0]},)`;
  return `(${shape.join(', ')})`;
}

/** The header bytes (magic to final newline) NumPy writes for an array of `spec`. */
export function encodeNpyHeader(spec: ArraySpec): Uint8Array {
  if (!isDType(spec.dtype))
    throw new InvalidArgumentError('dtype', spec.dtype, `one of ${DTYPES.join(', ')}`);
  assertShape(spec.shape);
  let dict = `{'descr': '${DTYPE_INFO[spec.dtype].npy}', 'fortran_order': False, 'shape': ${pythonShape(spec.shape)}, }`;
  if (spec.shape.length > 0) dict += ' '.repeat(GROWTH_AXIS_MAX_DIGITS - String(spec.shape[0]).length);
  const hlen = dict.length + 1; // + '\n'
  for (const [major, lengthBytes] of [
    [1, 2],
    [2, 4],
  ] as const) {
    const prefix = MAGIC.length + 2 + lengthBytes;
    const padlen = ARRAY_ALIGN - ((prefix + hlen) % ARRAY_ALIGN);
    const total = hlen + padlen;
    if (lengthBytes === 2 && total > 0xffff) continue;
    const out = new Uint8Array(prefix + total);
    out.set(MAGIC, 0);
    out[6] = major;
    out[7] = 0;
    const view = new DataView(out.buffer);
    if (lengthBytes === 2) view.setUint16(8, total, true);
    else view.setUint32(8, total, true);
    out.set(Buffer.from(dict, 'latin1'), prefix);
    out.fill(0x20, prefix + dict.length, out.length - 1);
    out[out.length - 1] = 0x0a;
    return out;
  }
  throw new UnsupportedError('npy header too large');
}

/** Parse a Python literal dict of the kind NumPy writes in `.npy` headers. */
function parseHeaderDict(text: string, file: string): Record<string, unknown> {
  let i = 0;
  const fail = (what: string): never => {
    throw new CorruptFileError(
      file,
      `bad npy header at character ${i}: ${what} in ${JSON.stringify(text.trim())}`,
    );
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) fail(`expected '${c}'`);
    i++;
  };
  const parseValue = (): unknown => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (text.startsWith('True', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('False', i)) {
      i += 5;
      return false;
    }
    if (c === '(') {
      i++;
      const items: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') {
          i++;
          return items;
        }
        const m = /^\d+L?/.exec(text.slice(i));
        if (!m) fail('expected a non-negative integer in the shape');
        items.push(Number.parseInt(m![0], 10));
        i += m![0].length;
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') fail("expected ',' or ')'");
      }
    }
    if (c === '[') throw new UnsupportedError(`${file}: structured NumPy dtypes are not supported`);
    return fail('unexpected value');
  };
  const dict: Record<string, unknown> = {};
  expect('{');
  for (;;) {
    ws();
    if (text[i] === '}') {
      i++;
      break;
    }
    const key = parseValue();
    if (typeof key !== 'string') fail('expected a string key');
    expect(':');
    dict[key as string] = parseValue();
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') fail("expected ',' or '}'");
  }
  ws();
  if (i !== text.length) fail('trailing characters');
  return dict;
}

/** Map a NumPy `descr` such as '<f4' onto a dtype and byte order. */
function parseDescr(descr: string, file: string): { dtype: DType; bigEndian: boolean } {
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(descr);
  const order = m?.[1] ?? '';
  const code = m ? `${m[2]}${m[3]}` : '';
  const dtype = DTYPES.find((d) => DTYPE_INFO[d].npy.slice(1) === code);
  if (!m || !dtype) {
    throw new UnsupportedError(
      `${file}: NumPy dtype ${JSON.stringify(descr)} is not supported (supported: ${DTYPES.map((d) => DTYPE_INFO[d].npy).join(', ')})`,
    );
  }
  return { dtype, bigEndian: order === '>' && DTYPE_INFO[dtype].size > 1 };
}

/**
 * Parse the header at the reader's position (reading through it). Checks the magic, version,
 * header dict, dtype and that the rest of the member (`available` bytes) holds exactly the data.
 */
export async function readNpyHeaderFrom(
  reader: SequentialReader,
  available: number,
  label = reader.file,
): Promise<NpyHeader> {
  const start = reader.position;
  if (available < 10)
    throw new CorruptFileError(label, `truncated: ${available} bytes is too short for an npy header`);
  const head = await reader.read(10, 'npy header');
  if (!MAGIC.every((b, k) => head[k] === b)) throw new CorruptFileError(label, 'not an npy file (bad magic)');
  const major = head[6];
  const minor = head[7];
  if (![1, 2, 3].includes(major) || minor !== 0) {
    throw new CorruptFileError(label, `unsupported npy format version ${major}.${minor}`);
  }
  let hlen: number;
  let prefix = 10;
  if (major === 1) hlen = head[8] | (head[9] << 8);
  else {
    const more = await reader.read(2, 'npy header');
    hlen = new DataView(new Uint8Array([head[8], head[9], more[0], more[1]]).buffer).getUint32(0, true);
    prefix = 12;
  }
  if (prefix + hlen > available) {
    throw new CorruptFileError(
      label,
      `truncated: npy header of ${hlen} bytes does not fit in ${available} bytes`,
    );
  }
  const raw = await reader.read(hlen, 'npy header');
  const text = Buffer.from(raw).toString(major === 3 ? 'utf8' : 'latin1');
  const dict = parseHeaderDict(text, label);
  if (
    typeof dict.descr !== 'string' ||
    typeof dict.fortran_order !== 'boolean' ||
    !Array.isArray(dict.shape)
  ) {
    throw new CorruptFileError(
      label,
      `npy header lacks descr, fortran_order or shape: ${JSON.stringify(text.trim())}`,
    );
  }
  const shape = dict.shape as number[];
  const { dtype, bigEndian } = parseDescr(dict.descr, label);
  if (dict.fortran_order && shape.filter((d) => d > 1).length > 1) {
    throw new UnsupportedError(
      `${label}: Fortran-order arrays are not supported (save np.ascontiguousarray(a))`,
    );
  }
  if (!Number.isSafeInteger(numElements(shape))) throw new CorruptFileError(label, 'npy shape is too large');
  const dataBytes = numElements(shape) * DTYPE_INFO[dtype].size;
  const dataOffset = start + prefix + hlen;
  const have = available - prefix - hlen;
  if (have < dataBytes) {
    throw new CorruptFileError(
      label,
      `truncated: shape [${shape.join(', ')}] ${dtype} needs ${dataBytes} data bytes, the file has ${have}`,
    );
  }
  if (have > dataBytes) {
    throw new CorruptFileError(
      label,
      `${have - dataBytes} unexpected bytes after the data of shape [${shape.join(', ')}] ${dtype}`,
    );
  }
  return { dtype, shape, version: [major, minor], dataOffset, dataBytes, bigEndian };
}

/** Write the whole `.npy` (header + data) of an array through `writer`. */
export async function writeNpyTo(
  writer: HashingWriter,
  spec: ArraySpec,
  source: ArraySource,
  argument = 'array',
): Promise<void> {
  await writer.write(encodeNpyHeader(spec));
  await writeArrayData(writer, spec, source, argument);
}

/** Size in bytes of the `.npy` file of an array of `spec`. */
export function npyFileBytes(spec: ArraySpec): number {
  return encodeNpyHeader(spec).byteLength + numElements(spec.shape) * DTYPE_INFO[spec.dtype].size;
}

/** Write `array` to `file` as `.npy`, atomically. Returns size and sha256. */
export async function writeNpy(file: string, array: NdArray): Promise<WrittenFile> {
  assertNdArray(array);
  return writeHashedFile(file, (writer) => writeNpyTo(writer, array, array.data));
}

/**
 * Stream an array of `spec` to `file` as `.npy`: `produce` writes the elements in C order in
 * chunks (for arrays too large to hold twice). The file appears only when all elements arrived.
 */
export async function streamNpy(file: string, spec: ArraySpec, produce: ArraySource): Promise<WrittenFile> {
  return writeHashedFile(file, (writer) => writeNpyTo(writer, spec, produce));
}

/** Options for reading an array file. */
export interface ReadOptions {
  /** Expected sha256 of the whole file; a mismatch throws CorruptFileError. Default: not checked. */
  sha256?: string;
}

/** An array read from a file, with the file's sha256 (computed while reading). */
export interface ReadArray<D extends DType = DType> extends NdArray<D> {
  sha256: string;
}

/** Options of {@link readNpy}. */
export interface NpyReadOptions extends ReadOptions {
  /** Expected dtype; another throws CorruptFileError (after the hash check). Default: any. */
  dtype?: DType;
  /** Expected shape; another throws CorruptFileError (after the hash check). Default: any. */
  shape?: readonly number[];
}

/** Read an `.npy` file, verifying header, size and (optionally) hash, dtype and shape. */
export async function readNpy(file: string, options: NpyReadOptions = {}): Promise<ReadArray> {
  const reader = await SequentialReader.open(file, { hash: true });
  try {
    const header = await readNpyHeaderFrom(reader, reader.size);
    const data = await readArrayData(reader, header, header.bigEndian);
    const sha256 = (await reader.finish())!;
    checkHash(file, sha256, options.sha256);
    const { dtype = header.dtype, shape = header.shape } = options;
    if (header.dtype !== dtype || JSON.stringify(header.shape) !== JSON.stringify(shape)) {
      throw new CorruptFileError(
        file,
        `expected ${dtype} [${shape.join(', ')}], found ${header.dtype} [${header.shape.join(', ')}]`,
      );
    }
    return { dtype: header.dtype, shape: header.shape, data, sha256 };
  } finally {
    await reader.close();
  }
}

/** Read only the header of an `.npy` file (dtype, shape, data offset). */
export async function readNpyHeader(file: string): Promise<NpyHeader> {
  const reader = await SequentialReader.open(file);
  try {
    return await readNpyHeaderFrom(reader, reader.size);
  } finally {
    await reader.close();
  }
}

/**
 * Read rows `[start, start + count)` of the first axis of an `.npy` file without loading the rest
 * (e.g. block rows of a kernel larger than memory). Returns an array of shape
 * `[count, ...shape.slice(1)]`. No hash check (the hash covers the whole file).
 */
export async function readNpyRows(file: string, start: number, count: number): Promise<NdArray> {
  const reader = await SequentialReader.open(file);
  try {
    const header = await readNpyHeaderFrom(reader, reader.size);
    if (header.shape.length === 0)
      throw new InvalidArgumentError('file', file, 'an array with at least one axis');
    const rows = header.shape[0];
    if (!Number.isSafeInteger(start) || start < 0 || start > rows) {
      throw new InvalidArgumentError('start', start, `an integer in [0, ${rows}]`);
    }
    if (!Number.isSafeInteger(count) || count < 0 || start + count > rows) {
      throw new InvalidArgumentError('count', count, `an integer in [0, ${rows - start}]`);
    }
    const rowBytes = numElements(header.shape.slice(1)) * DTYPE_INFO[header.dtype].size;
    await reader.skipTo(header.dataOffset + start * rowBytes);
    const shape = [count, ...header.shape.slice(1)];
    const data = await readArrayData(reader, { dtype: header.dtype, shape }, header.bigEndian);
    return { dtype: header.dtype, shape, data };
  } finally {
    await reader.close();
  }
}
