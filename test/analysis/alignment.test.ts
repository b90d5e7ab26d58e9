import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  centeredAlignment,
  denseKernelMatrix,
  kernelTargetAlignment,
  kernelTargetAlignmentDense,
  npyKernelMatrix,
  oneHot,
} from '../../src/analysis/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { writeNpy } from '../../src/io/index.js';
import { tempDir } from '../util/temp-dir.js';
import { psdKernel, randomLabels } from './helpers.js';

const dir = tempDir('analysis-alignment');

/** Plain-loop reference: form H A H and H B H explicitly, then ⟨·,·⟩_F / (‖·‖ ‖·‖). */
function referenceAlignment(a: ArrayLike<number>, b: ArrayLike<number>, n: number): number {
  const center = (m: ArrayLike<number>) => {
    const H = (i: number, j: number) => (i === j ? 1 : 0) - 1 / n;
    const tmp = new Float64Array(n * n);
    const out = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < n; q++) s += H(i, q) * m[q * n + j]!;
        tmp[i * n + j] = s;
      }
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < n; q++) s += tmp[i * n + q]! * H(q, j);
        out[i * n + j] = s;
      }
    return out;
  };
  const ac = center(a);
  const bc = center(b);
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < n * n; i++) {
    ab += ac[i]! * bc[i]!;
    aa += ac[i]! ** 2;
    bb += bc[i]! ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

function targetKernel(labels: ArrayLike<number>): Float64Array {
  const n = labels.length;
  const t = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[i * n + j] = labels[i] === labels[j] ? 1 : 0;
  return t;
}

describe('kernel–target alignment (centred, Cortes et al. 2012)', () => {
  it('hand-computed: K = I₄, labels [0, 0, 1, 1] → 1/√3', async () => {
    const I = new Float64Array(16);
    for (let i = 0; i < 4; i++) I[i * 4 + i] = 1;
    // ⟨H, HTH⟩ = tr(T) − 1ᵀT1/4 = 2, ‖H‖ = √3, ‖HTH‖ = ‖T − ½11ᵀ‖ = 2
    expect(await kernelTargetAlignmentDense(I, 4, oneHot([0, 0, 1, 1], 2))).toBeCloseTo(1 / Math.sqrt(3), 14);
    // the target kernel itself is perfectly aligned
    expect(
      await kernelTargetAlignmentDense(targetKernel([0, 0, 1, 1]), 4, oneHot([0, 0, 1, 1], 2)),
    ).toBeCloseTo(1, 14);
  });

  it('equals the explicit centred-matrix formula on a random kernel; streamed equals in memory', async () => {
    const n = 50;
    const K = psdKernel(n, 20, 4);
    const labels = randomLabels(n, 4, 9);
    const ours = await kernelTargetAlignmentDense(K, n, oneHot(labels, 4));
    expect(Math.abs(ours - referenceAlignment(K, targetKernel(labels), n))).toBeLessThan(1e-12);
    const file = path.join(dir, 'k.npy');
    await writeNpy(file, { dtype: 'float64', shape: [n, n], data: K });
    const streamed = await kernelTargetAlignment(
      await npyKernelMatrix(file, { panelBytes: 9 * n * 8, residency: 'stream' }),
      oneHot(labels, 4),
    );
    expect(Math.abs(streamed - ours)).toBeLessThan(1e-14);
  });

  it('a flattened [n, 1] target: one output per row', async () => {
    const n = 30;
    const K = psdKernel(n, 10, 2);
    const y = Float64Array.from({ length: n }, (_, i) => Math.sin(i));
    const T = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) T[i * n + j] = y[i]! * y[j]!;
    expect(Math.abs((await kernelTargetAlignmentDense(K, n, y)) - referenceAlignment(K, T, n))).toBeLessThan(
      1e-12,
    );
    await expect(kernelTargetAlignment(denseKernelMatrix(K, n), new Float64Array(n + 1))).rejects.toThrow(
      InvalidArgumentError,
    );
  });
});

describe('centeredAlignment (CKA between kernels)', () => {
  const n = 40;
  const A = psdKernel(n, 15, 1);
  const B = psdKernel(n, 15, 2);

  it('equals the explicit centred-matrix formula', () => {
    expect(Math.abs(centeredAlignment(A, B, n) - referenceAlignment(A, B, n))).toBeLessThan(1e-12);
  });

  it('is 1 for a kernel against a scaled copy plus a constant, symmetric in its arguments', () => {
    const shifted = A.map((v) => 3 * v + 7);
    expect(centeredAlignment(A, shifted, n)).toBeCloseTo(1, 12);
    expect(centeredAlignment(A, B, n)).toBeCloseTo(centeredAlignment(B, A, n), 14);
    expect(centeredAlignment(A, B, n)).toBeLessThan(0.999);
  });

  it('NaN for a constant kernel; size mismatch is an InvalidArgumentError', () => {
    expect(centeredAlignment(A, new Float64Array(n * n).fill(2), n)).toBeNaN();
    expect(() => centeredAlignment(A, B.subarray(1), n)).toThrow(/b: expected/);
  });
});
