// Shared test helpers for src/io: sample arrays of every dtype, temporary directories, and a
// Python/NumPy runner for the interoperability checks.
import { spawnSync } from 'node:child_process';
import { allocate, DTYPES, type DType, type NdArray, numElements } from '../../src/io/index.js';
import { Rng } from '../../src/util/rng.js';

export { tempDir } from '../util/temp-dir.js';

/** Deterministic sample values of `dtype`, including the extremes of the type. */
export function sampleArray(dtype: DType, shape: number[], seed = 1): NdArray {
  const rng = new Rng(seed).fork(dtype);
  const n = numElements(shape);
  const data = allocate(dtype, n);
  const ints: Record<string, [number, number]> = {
    int8: [-128, 127],
    uint8: [0, 255],
    int16: [-32768, 32767],
    uint16: [0, 65535],
    int32: [-(2 ** 31), 2 ** 31 - 1],
    uint32: [0, 2 ** 32 - 1],
  };
  for (let k = 0; k < n; k++) {
    if (dtype === 'float32' || dtype === 'float64') {
      (data as Float32Array)[k] = rng.normal() * 10 ** (rng.int(8) - 4);
    } else if (dtype === 'bool') {
      (data as Uint8Array)[k] = rng.int(2);
    } else if (dtype === 'int64') {
      const extremes = [-(2n ** 63n), 2n ** 63n - 1n, 2n ** 53n + 1n];
      (data as BigInt64Array)[k] = k < 3 ? extremes[k] : BigInt(rng.int(2000001) - 1000000);
    } else if (dtype === 'uint64') {
      const extremes = [0n, 2n ** 64n - 1n, 2n ** 53n + 1n];
      (data as BigUint64Array)[k] = k < 3 ? extremes[k] : BigInt(rng.int(2000001));
    } else {
      const [lo, hi] = ints[dtype];
      (data as Int32Array)[k] = k === 0 ? lo : k === 1 ? hi : lo + Math.floor(rng.uniform() * (hi - lo + 1));
    }
  }
  if ((dtype === 'float32' || dtype === 'float64') && n >= 4) {
    // Values JSON cannot hold directly, and the signed zero.
    (data as Float32Array)[0] = Number.NaN;
    (data as Float32Array)[1] = Number.POSITIVE_INFINITY;
    (data as Float32Array)[2] = Number.NEGATIVE_INFINITY;
    (data as Float32Array)[3] = -0;
  }
  return { dtype, shape, data } as NdArray;
}

/** Shapes every round trip covers: scalar, empty, vector, matrix, 3-d. */
export const SHAPES: number[][] = [[], [0], [7], [3, 5], [2, 3, 4], [4, 0, 2]];

export { DTYPES };

/** Byte-level equality of two arrays (dtype, shape and every bit of the data, NaN included). */
export function sameArray(a: NdArray, b: NdArray): boolean {
  if (a.dtype !== b.dtype || a.shape.join(',') !== b.shape.join(',')) return false;
  const x = Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return x.equals(y);
}

/**
 * Debian's Python, which has python3-numpy; the `python3` first on PATH may be a pyenv Python
 * without it.
 */
export const PYTHON = '/usr/bin/python3';

function probeNumpy(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import numpy'], { encoding: 'utf8' });
  return r.status === 0;
}

/** NumPy is importable from {@link PYTHON} here. */
export const HAVE_NUMPY = probeNumpy();

/**
 * Whether to run the NumPy interoperability tests: always in CI (where a missing NumPy must make
 * them fail), and locally only when NumPy is installed.
 */
export const RUN_NUMPY_TESTS = HAVE_NUMPY || Boolean(process.env.CI);

/** Run a Python script (with numpy imported as np), passing `args` as sys.argv[1:]; returns stdout. */
export function python(script: string, ...args: string[]): string {
  const r = spawnSync(PYTHON, ['-c', `import sys, json\nimport numpy as np\n${script}`, ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`${PYTHON} failed (${r.status}): ${r.stderr || r.error}`);
  return r.stdout;
}
