/**
 * Element types and the n-dimensional array value every array format in src/io reads and writes.
 *
 * An `NdArray` is a row-major (C order) typed array plus its shape: element `[i0, i1, ..., ik]` is
 * `data[((i0 * s1 + i1) * s2 + ...) * sk + ik]`. All formats store the bytes little-endian.
 */
import { InvalidArgumentError, UnsupportedError } from '../errors.js';

/** Element types supported by every format (npy, npz, safetensors, JSON). */
export type DType =
  | 'float32'
  | 'float64'
  | 'int8'
  | 'uint8'
  | 'int16'
  | 'uint16'
  | 'int32'
  | 'uint32'
  | 'int64'
  | 'uint64'
  | 'bool';

/** The typed array holding elements of dtype `D` (bool is a Uint8Array of 0/1). */
export type TypedArrayOf<D extends DType> = D extends 'float32'
  ? Float32Array
  : D extends 'float64'
    ? Float64Array
    : D extends 'int8'
      ? Int8Array
      : D extends 'uint8' | 'bool'
        ? Uint8Array
        : D extends 'int16'
          ? Int16Array
          : D extends 'uint16'
            ? Uint16Array
            : D extends 'int32'
              ? Int32Array
              : D extends 'uint32'
                ? Uint32Array
                : D extends 'int64'
                  ? BigInt64Array
                  : D extends 'uint64'
                    ? BigUint64Array
                    : never;

/** Any typed array an NdArray can hold. */
export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

/** A row-major array: `data.length === prod(shape)`. */
export interface NdArray<D extends DType = DType> {
  /** Element type. */
  dtype: D;
  /** Dimensions; `[]` for a scalar (one element). */
  shape: number[];
  /** Elements in C (row-major) order. */
  data: TypedArrayOf<D>;
}

/** Just the description of an array (what a header says), without the data. */
export interface ArraySpec {
  dtype: DType;
  shape: number[];
}

type TypedArrayConstructor = {
  new (length: number): TypedArray;
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArray;
  readonly BYTES_PER_ELEMENT: number;
};

interface DTypeInfo {
  /** Bytes per element. */
  size: number;
  /** The typed array class holding the elements. */
  ctor: TypedArrayConstructor;
  /** NumPy `descr` (little-endian, or `|` where byte order does not apply). */
  npy: string;
  /** safetensors dtype name. */
  safetensors: string;
}

/** Per-dtype facts: element size, typed array class, NumPy and safetensors names. */
export const DTYPE_INFO: Readonly<Record<DType, DTypeInfo>> = {
  float32: { size: 4, ctor: Float32Array, npy: '<f4', safetensors: 'F32' },
  float64: { size: 8, ctor: Float64Array, npy: '<f8', safetensors: 'F64' },
  int8: { size: 1, ctor: Int8Array, npy: '|i1', safetensors: 'I8' },
  uint8: { size: 1, ctor: Uint8Array, npy: '|u1', safetensors: 'U8' },
  int16: { size: 2, ctor: Int16Array, npy: '<i2', safetensors: 'I16' },
  uint16: { size: 2, ctor: Uint16Array, npy: '<u2', safetensors: 'U16' },
  int32: { size: 4, ctor: Int32Array, npy: '<i4', safetensors: 'I32' },
  uint32: { size: 4, ctor: Uint32Array, npy: '<u4', safetensors: 'U32' },
  int64: { size: 8, ctor: BigInt64Array, npy: '<i8', safetensors: 'I64' },
  uint64: { size: 8, ctor: BigUint64Array, npy: '<u8', safetensors: 'U64' },
  bool: { size: 1, ctor: Uint8Array, npy: '|b1', safetensors: 'BOOL' },
};

/** All supported dtypes, in a stable order. */
export const DTYPES = Object.keys(DTYPE_INFO) as DType[];

/** True when `value` names a supported dtype. */
export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.hasOwn(DTYPE_INFO, value);
}

/** The dtype a typed array holds by default (a Uint8Array is 'uint8'; pass 'bool' explicitly). */
export function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof BigUint64Array) return 'uint64';
  throw new UnsupportedError(`unsupported typed array ${(data as object).constructor?.name}`);
}

/** True when `data` is the typed array class dtype `dtype` uses. */
export function matchesDType(data: TypedArray, dtype: DType): boolean {
  return data.constructor === DTYPE_INFO[dtype].ctor && !(data instanceof Uint8ClampedArray);
}

/** Number of elements of an array of shape `shape` (1 for a scalar). */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Throw unless `shape` is a list of non-negative safe integers (argument named `argument`). */
export function assertShape(shape: unknown, argument = 'shape'): asserts shape is number[] {
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new InvalidArgumentError(argument, shape, 'an array of non-negative integers');
  }
  if (!Number.isSafeInteger(numElements(shape))) {
    throw new InvalidArgumentError(argument, shape, 'a shape whose element count is a safe integer');
  }
}

/** Allocate a zero-filled typed array for `n` elements of `dtype`. */
export function allocate<D extends DType>(dtype: D, n: number): TypedArrayOf<D> {
  return new DTYPE_INFO[dtype].ctor(n) as TypedArrayOf<D>;
}

/**
 * Make an NdArray from `data` and `shape`, checking that the length matches the shape and the
 * typed array matches the dtype (`dtype` defaults to the typed array's own, see `dtypeOf`).
 */
export function ndarray<D extends DType>(data: TypedArrayOf<D>, shape: number[], dtype?: D): NdArray<D> {
  const dt = (dtype ?? dtypeOf(data)) as D;
  assertShape(shape);
  if (!matchesDType(data, dt)) {
    throw new InvalidArgumentError('data', data, `a ${DTYPE_INFO[dt].ctor.name} for dtype ${dt}`);
  }
  if (data.length !== numElements(shape)) {
    throw new InvalidArgumentError(
      'data',
      data,
      `${numElements(shape)} elements for shape [${shape.join(', ')}]`,
    );
  }
  return { dtype: dt, shape: [...shape], data };
}

/** Validate an NdArray given by a caller (argument name used in the error). */
export function assertNdArray(array: NdArray, argument = 'array'): void {
  if (!array || typeof array !== 'object' || !isDType(array.dtype)) {
    throw new InvalidArgumentError(`${argument}.dtype`, array?.dtype, `one of ${DTYPES.join(', ')}`);
  }
  assertShape(array.shape, `${argument}.shape`);
  if (!ArrayBuffer.isView(array.data) || !matchesDType(array.data as TypedArray, array.dtype)) {
    throw new InvalidArgumentError(
      `${argument}.data`,
      array.data,
      `a ${DTYPE_INFO[array.dtype].ctor.name} for dtype ${array.dtype}`,
    );
  }
  if (array.data.length !== numElements(array.shape)) {
    throw new InvalidArgumentError(
      `${argument}.data`,
      array.data,
      `${numElements(array.shape)} elements for shape [${array.shape.join(', ')}]`,
    );
  }
}

/** The bytes of a typed array, without copying (a view over the same memory). */
export function bytesOf(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Typed array of `dtype` over raw little-endian bytes (copies only when unaligned). */
export function fromBytes<D extends DType>(dtype: D, bytes: Uint8Array): TypedArrayOf<D> {
  const { size, ctor } = DTYPE_INFO[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new InvalidArgumentError('bytes', bytes, `a multiple of ${size} bytes for dtype ${dtype}`);
  }
  assertLittleEndianHost();
  if (bytes.byteOffset % size === 0) {
    return new ctor(bytes.buffer, bytes.byteOffset, bytes.byteLength / size) as TypedArrayOf<D>;
  }
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, bytes.byteLength / size) as TypedArrayOf<D>;
}

let hostChecked = false;
/** All formats are little-endian and the data are written as the host's bytes: require an LE host. */
export function assertLittleEndianHost(): void {
  if (hostChecked) return;
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new UnsupportedError('entk array files need a little-endian host');
  }
  hostChecked = true;
}

/** Swap the byte order of every `size`-byte element of `bytes` in place. */
export function byteSwap(bytes: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let o = 0; o < bytes.length; o += size) {
    for (let a = o, b = o + size - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}
