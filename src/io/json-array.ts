/**
 * Small arrays as JSON: `{"dtype": "float32", "shape": [2, 3], "data": [[1, 2, 3], [4, 5, 6]]}`,
 * with `data` nested like the shape (a bare number for a scalar), so that
 * `np.array(obj["data"], dtype=obj["dtype"])` rebuilds the array in Python.
 *
 * Values are exact: float32 elements are written as the shortest decimal of their float64 value
 * (reading it back and rounding to float32 gives the same bits); int64/uint64 beyond 2^53 and the
 * non-finite floats, which JSON lacks, are strings ("9007199254740993", "NaN", "Infinity",
 * "-Infinity"). Bool elements are true/false. Intended for small kernels: writing refuses arrays
 * above `maxElements` (default 2^22) and points at .npy/safetensors instead.
 */

import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { CorruptFileError, InvalidArgumentError } from '../errors.js';
import { checkHash, type WrittenFile, writeHashedFile } from './binary.js';
import { allocate, assertNdArray, DTYPES, type DType, isDType, type NdArray, numElements } from './dtypes.js';
import type { ReadOptions } from './npy.js';

/** Most axes a JSON array may have (NumPy's limit). */
const MAX_NDIM = 64;

/** Default largest array written as JSON (elements). */
export const JSON_MAX_ELEMENTS = 2 ** 22;

function encodeValue(dtype: DType, v: number | bigint): string {
  if (dtype === 'bool') return v ? 'true' : 'false';
  if (typeof v === 'bigint') {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? String(v)
      : `"${v}"`;
  }
  if (Number.isNaN(v)) return '"NaN"';
  if (v === Number.POSITIVE_INFINITY) return '"Infinity"';
  if (v === Number.NEGATIVE_INFINITY) return '"-Infinity"';
  if (Object.is(v, -0)) return '-0.0';
  return String(v);
}

/** Options for writing an array as JSON. */
export interface JsonWriteOptions {
  /** Refuse arrays with more elements than this. Default JSON_MAX_ELEMENTS (2^22). */
  maxElements?: number;
}

/** Write `array` to `file` as JSON (atomically). Returns size and sha256. */
export async function writeJsonArray(
  file: string,
  array: NdArray,
  options: JsonWriteOptions = {},
): Promise<WrittenFile> {
  assertNdArray(array);
  const max = options.maxElements ?? JSON_MAX_ELEMENTS;
  if (array.data.length > max) {
    throw new InvalidArgumentError(
      'format',
      'json',
      `npy or safetensors for an array of ${array.data.length} elements (JSON is limited to ${max})`,
    );
  }
  const { dtype, shape, data } = array;
  return writeHashedFile(file, async (writer) => {
    let pending = `{"dtype":"${dtype}","shape":[${shape.join(',')}],"data":`;
    const flush = async (force = false) => {
      if (pending.length > 1 << 20 || force) {
        await writer.write(Buffer.from(pending, 'utf8'));
        pending = '';
      }
    };
    if (shape.length === 0) {
      pending += encodeValue(dtype, data[0]);
    } else {
      const inner = shape[shape.length - 1];
      let index = 0;
      // Emit nested lists; top-level rows go on their own lines to keep files diffable.
      const emit = async (axis: number): Promise<void> => {
        pending += '[';
        if (axis === shape.length - 1) {
          for (let k = 0; k < inner; k++) pending += (k ? ',' : '') + encodeValue(dtype, data[index++]);
        } else {
          for (let k = 0; k < shape[axis]; k++) {
            if (k) pending += ',';
            if (axis === 0) pending += '\n';
            await emit(axis + 1);
            await flush();
          }
          if (axis === 0 && shape[0] > 0) pending += '\n';
        }
        pending += ']';
      };
      await emit(0);
    }
    pending += '}\n';
    await flush(true);
  });
}

function decodeValue(dtype: DType, v: unknown, file: string, where: string): number | bigint {
  const bad = (): never => {
    throw new CorruptFileError(file, `data${where}: ${JSON.stringify(v)} is not a valid ${dtype} value`);
  };
  if (dtype === 'bool') return v === true ? 1 : v === false ? 0 : bad();
  if (dtype === 'int64' || dtype === 'uint64') {
    if (!(typeof v === 'number' && Number.isSafeInteger(v)) && !(typeof v === 'string' && /^-?\d+$/.test(v)))
      bad();
    const b = BigInt(v as number | string);
    const [lo, hi] = dtype === 'int64' ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
    return b < lo || b > hi ? bad() : b;
  }
  if (dtype === 'float32' || dtype === 'float64') {
    if (typeof v === 'number') return v;
    if (v === 'NaN') return Number.NaN;
    if (v === 'Infinity') return Number.POSITIVE_INFINITY;
    if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
    return bad();
  }
  const bits = Number(dtype.replace(/\D/g, ''));
  const [lo, hi] = dtype.startsWith('u') ? [0, 2 ** bits - 1] : [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) bad();
  return v as number;
}

/** Read an array written by `writeJsonArray` (or by hand in the same layout), verifying it. */
export async function readJsonArray(
  file: string,
  options: ReadOptions = {},
): Promise<NdArray & { sha256: string }> {
  let raw: Buffer;
  try {
    raw = await fs.readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new InvalidArgumentError('file', file, 'an existing file');
    throw error;
  }
  const sha256 = createHash('sha256').update(raw).digest('hex');
  checkHash(file, sha256, options.sha256);
  let obj: { dtype?: unknown; shape?: unknown; data?: unknown };
  try {
    obj = JSON.parse(raw.toString('utf8'));
  } catch (error) {
    throw new CorruptFileError(file, `not valid JSON, truncated? (${(error as Error).message})`);
  }
  if (!obj || typeof obj !== 'object' || !isDType(obj.dtype)) {
    throw new CorruptFileError(file, `"dtype" must be one of ${DTYPES.join(', ')}`);
  }
  const shape = obj.shape;
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new CorruptFileError(file, '"shape" must be an array of non-negative integers');
  }
  if (shape.length > MAX_NDIM) {
    throw new CorruptFileError(file, `"shape" has ${shape.length} axes (at most ${MAX_NDIM})`);
  }
  // Every element takes at least one byte of the file: a larger shape cannot be what the file holds.
  if (numElements(shape) > raw.byteLength) {
    throw new CorruptFileError(
      file,
      `"shape" [${shape.join(', ')}] has more elements than the ${raw.byteLength}-byte file can hold`,
    );
  }
  const dtype = obj.dtype;
  const data = allocate(dtype, numElements(shape));
  let index = 0;
  const walk = (node: unknown, axis: number, where: string) => {
    if (axis === shape.length) {
      (data as unknown as Array<number | bigint>)[index++] = decodeValue(dtype, node, file, where);
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[axis]) {
      throw new CorruptFileError(
        file,
        `data${where}: expected a list of ${shape[axis]} (shape [${shape.join(', ')}]), found ${Array.isArray(node) ? `a list of ${node.length}` : JSON.stringify(node)?.slice(0, 40)}`,
      );
    }
    for (let k = 0; k < node.length; k++) walk(node[k], axis + 1, `${where}[${k}]`);
  };
  walk(obj.data, 0, '');
  return { dtype, shape, data, sha256 };
}
