/**
 * One array per file, in any supported format, chosen by name or file extension:
 *
 * | format        | extension      | holds                     | large arrays (streamed) |
 * |---------------|----------------|---------------------------|-------------------------|
 * | `npy`         | `.npy`         | one array                 | yes                     |
 * | `npz`         | `.npz`         | named arrays (ZIP store)  | yes                     |
 * | `safetensors` | `.safetensors` | named tensors + metadata  | yes                     |
 * | `json`        | `.json`        | one small array           | no (≤ 2^22 elements)    |
 *
 * In npz and safetensors files written here the array is named `name` (default 'array').
 */
import { InvalidArgumentError } from '../errors.js';
import type { ArraySource, WrittenFile } from './binary.js';
import { type ArraySpec, assertNdArray, type NdArray } from './dtypes.js';
import { readJsonArray, writeJsonArray } from './json-array.js';
import { type ReadArray, readNpy, readNpyHeader, streamNpy, writeNpy } from './npy.js';
import { readNpz, readNpzHeaders, writeNpz } from './npz.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';

/** The array file formats entk reads and writes. */
export type ArrayFormat = 'npy' | 'npz' | 'safetensors' | 'json';

/** All formats, in a stable order. */
export const ARRAY_FORMATS: readonly ArrayFormat[] = ['npy', 'npz', 'safetensors', 'json'];

/** File extension of each format (with the dot). */
export const FORMAT_EXTENSION: Readonly<Record<ArrayFormat, string>> = {
  npy: '.npy',
  npz: '.npz',
  safetensors: '.safetensors',
  json: '.json',
};

/** Parse a format name given by a user (argument named `argument` in the error). */
export function parseArrayFormat(value: unknown, argument = 'format'): ArrayFormat {
  if (typeof value === 'string' && (ARRAY_FORMATS as readonly string[]).includes(value))
    return value as ArrayFormat;
  throw new InvalidArgumentError(argument, value, `one of ${ARRAY_FORMATS.join(', ')}`);
}

/** The format of `file` from its extension. */
export function formatOfFile(file: string): ArrayFormat {
  const format = ARRAY_FORMATS.find((f) => file.toLowerCase().endsWith(FORMAT_EXTENSION[f]));
  if (!format) {
    throw new InvalidArgumentError(
      'file',
      file,
      `a file name ending in ${Object.values(FORMAT_EXTENSION).join(', ')}`,
    );
  }
  return format;
}

/** Options for writing one array to a file. */
export interface WriteArrayOptions {
  /** Format; default from the file extension. */
  format?: ArrayFormat;
  /** Name of the array inside npz/safetensors files. Default 'array'. */
  name?: string;
  /** safetensors `__metadata__` (string → string); ignored by other formats. Default {}. */
  metadata?: Record<string, string>;
}

/** Write one array to `file` atomically, in `options.format` (default: from the extension). */
export async function writeArray(
  file: string,
  array: NdArray,
  options: WriteArrayOptions = {},
): Promise<WrittenFile> {
  assertNdArray(array);
  const format = options.format ?? formatOfFile(file);
  const name = options.name ?? 'array';
  switch (format) {
    case 'npy':
      return writeNpy(file, array);
    case 'npz':
      return writeNpz(file, { [name]: array });
    case 'safetensors':
      return writeSafetensors(file, { [name]: array }, options.metadata);
    case 'json':
      return writeJsonArray(file, array);
  }
}

/**
 * Stream one array of `spec` to `file` atomically: `source` is a typed array or a producer that
 * writes the elements in C order in chunks (never holding a second copy). JSON is not streamed.
 */
export async function streamArray(
  file: string,
  spec: ArraySpec,
  source: ArraySource,
  options: WriteArrayOptions = {},
): Promise<WrittenFile> {
  const format = options.format ?? formatOfFile(file);
  const name = options.name ?? 'array';
  const entry = { name, dtype: spec.dtype, shape: spec.shape, data: source };
  switch (format) {
    case 'npy':
      return streamNpy(file, spec, source);
    case 'npz':
      return writeNpz(file, [entry]);
    case 'safetensors':
      return writeSafetensors(file, [entry], options.metadata);
    case 'json': {
      if (typeof source === 'function') {
        throw new InvalidArgumentError('format', 'json', 'npy, npz or safetensors for a streamed array');
      }
      return writeJsonArray(file, { dtype: spec.dtype, shape: spec.shape, data: source } as NdArray);
    }
  }
}

/** Options for reading one array from a file. */
export interface ReadArrayOptions {
  /** Format; default from the file extension. */
  format?: ArrayFormat;
  /** Array to take from an npz/safetensors file; default: the only one in the file. */
  name?: string;
  /** Expected sha256 of the file; a mismatch throws CorruptFileError. Default: not checked. */
  sha256?: string;
}

function pick<T>(file: string, arrays: Record<string, T>, name: string | undefined): T {
  const names = Object.keys(arrays);
  if (name === undefined) {
    if (names.length !== 1) {
      throw new InvalidArgumentError(
        'name',
        name,
        `one of the arrays in ${file}: ${names.join(', ') || '(none)'}`,
      );
    }
    return arrays[names[0]!]!;
  }
  if (!Object.hasOwn(arrays, name)) {
    throw new InvalidArgumentError(
      'name',
      name,
      `one of the arrays in ${file}: ${names.join(', ') || '(none)'}`,
    );
  }
  return arrays[name]!;
}

/** Read one array from `file`, verifying structure, sizes and (if given) the sha256. */
export async function readArray(file: string, options: ReadArrayOptions = {}): Promise<ReadArray> {
  const format = options.format ?? formatOfFile(file);
  switch (format) {
    case 'npy':
      return readNpy(file, options);
    case 'json':
      return readJsonArray(file, options);
    case 'npz': {
      const { arrays, sha256 } = await readNpz(file, options);
      return { ...pick(file, arrays, options.name), sha256 };
    }
    case 'safetensors': {
      const { tensors, sha256 } = await readSafetensors(file, options);
      return { ...pick(file, tensors, options.name), sha256 };
    }
  }
}

/**
 * What the header of one array in `file` says (dtype and shape), read without the data for npy,
 * npz and safetensors (a JSON array is small and read whole). The header's structure and the
 * file's size are checked against each other; a Fortran-order npy array with more than one
 * non-trivial axis is refused. `name` picks the array of an npz/safetensors file as in readArray.
 */
export async function readArrayHeader(
  file: string,
  options: Omit<ReadArrayOptions, 'sha256'> = {},
): Promise<ArraySpec> {
  const format = options.format ?? formatOfFile(file);
  const spec = (a: ArraySpec): ArraySpec => ({ dtype: a.dtype, shape: a.shape });
  switch (format) {
    case 'npy':
      return spec(await readNpyHeader(file));
    case 'json':
      return spec(await readJsonArray(file));
    case 'npz':
      return spec(pick(file, await readNpzHeaders(file), options.name));
    case 'safetensors':
      return spec(pick(file, (await readSafetensorsHeader(file)).tensors, options.name));
  }
}
