import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  centeredAlignment,
  denseKernelMatrix,
  kernelTargetAlignment,
  kernelTargetAlignmentDense,
  npyKernelMatrix,
  oneHot,
  oneHotKron,
} from '../../src/analysis/index.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { writeNpy } from '../../src/io/index.js';
import { tempDir } from '../util/temp-dir.js';
import { psdKernel, randomLabels, referenceAlignment } from './helpers.js';

const dir = tempDir('analysis-alignment');

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

  it('a full kernel with targets Y ⊗ I_V: the ideal kernel (YYᵀ) ⊗ I_V has alignment 1 (in memory and streamed)', async () => {
    const V = 3;
    const labels = [0, 0, 1, 1, 2, 2, 0, 1];
    const n = labels.length * V;
    const ideal = new Float64Array(n * n);
    for (let u = 0; u < labels.length; u++)
      for (let v = 0; v < labels.length; v++)
        if (labels[u] === labels[v]) for (let i = 0; i < V; i++) ideal[(u * V + i) * n + v * V + i] = 1;
    const targets = oneHotKron(labels, V);
    expect(targets.length).toBe(n * V * V);
    expect(await kernelTargetAlignmentDense(ideal, n, targets)).toBeCloseTo(1, 14);
    const file = path.join(dir, 'ideal.npy');
    await writeNpy(file, { dtype: 'float64', shape: [n, n], data: ideal });
    const streamed = await kernelTargetAlignment(
      await npyKernelMatrix(file, { panelBytes: 5 * n * 8, residency: 'stream' }),
      targets,
    );
    expect(streamed).toBeCloseTo(1, 14);
    // a random full kernel: the explicit centred formula with the target Gram (YYᵀ) ⊗ I_V
    const K = psdKernel(n, 30, 7);
    expect(
      Math.abs((await kernelTargetAlignmentDense(K, n, targets)) - referenceAlignment(K, ideal, n)),
    ).toBeLessThan(1e-12);
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
