import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  centeredAlignment,
  denseKernelMatrix,
  fullKernelTargetAlignment,
  kernelMatrixStats,
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

/** Y ⊗ I_V [N·V, C·V] of labels in [0, C) (any number of classes; = oneHotKron when C = V). */
function classKron(labels: ArrayLike<number>, C: number, V: number): Float64Array {
  const out = new Float64Array(labels.length * V * C * V);
  for (let u = 0; u < labels.length; u++)
    for (let i = 0; i < V; i++) out[(u * V + i) * C * V + labels[u]! * V + i] = 1;
  return out;
}

/** The ideal full kernel (YYᵀ) ⊗ I_V [N·V, N·V]. */
function idealFull(labels: ArrayLike<number>, V: number): Float64Array {
  const n = labels.length * V;
  const t = new Float64Array(n * n);
  for (let u = 0; u < labels.length; u++)
    for (let v = 0; v < labels.length; v++)
      if (labels[u] === labels[v]) for (let i = 0; i < V; i++) t[(u * V + i) * n + v * V + i] = 1;
  return t;
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('fullKernelTargetAlignment (class-block closed form of A(K, (YYᵀ) ⊗ I_V))', () => {
  // (labels, classes, V): V = 1; a class of one point; unequal class sizes; labels not 0…C−1 in
  // order; more classes than outputs; one class (T = 11ᵀ ⊗ I_V is not constant for V > 1).
  const cases: [number[], number, number][] = [
    [[0, 1, 1, 2, 2, 2, 0, 1, 2], 3, 1],
    [[2, 0, 0, 1, 1, 1, 1, 0], 3, 3],
    [[4, 0, 0, 3, 3, 3, 1, 1, 1, 1, 2, 0], 5, 2],
    [[1, 0, 1, 1, 1], 2, 6],
    [[0, 0, 0, 0], 1, 3],
    [[3, 3, 0, 1, 1, 1, 1, 1, 2, 2, 0, 3, 3, 1], 4, 4],
  ];
  for (const [labels, C, V] of cases) {
    it(`equals the dense Y ⊗ I_V computation and the explicit centred matrices: N = ${labels.length}, V = ${V}, ${C} classes`, async () => {
      const n = labels.length * V;
      const K = psdKernel(n, Math.min(n, 12), 100 + n);
      const targets = classKron(labels, C, V);
      const dense = await kernelTargetAlignmentDense(K, n, targets);
      const ours = await fullKernelTargetAlignment(denseKernelMatrix(K, n), labels, V);
      expect(relDiff(ours, dense)).toBeLessThan(1e-12);
      expect(relDiff(ours, referenceAlignment(K, idealFull(labels, V), n))).toBeLessThan(1e-12);
      expect(ours).toBeGreaterThan(0);
      // the ideal kernel
      expect(
        await fullKernelTargetAlignment(denseKernelMatrix(idealFull(labels, V), n), labels, V),
      ).toBeCloseTo(1, 14);
    });
  }

  it('a larger kernel (N = 40, V = 5, labels from oneHotKron): equals the dense computation; reuses stats; two passes', async () => {
    const V = 5;
    const labels = randomLabels(40, V, 3);
    const n = labels.length * V;
    const K = psdKernel(n, 60, 5);
    const dense = await kernelTargetAlignmentDense(K, n, oneHotKron(labels, V));
    const matrix = denseKernelMatrix(K, n);
    const ours = await fullKernelTargetAlignment(matrix, labels, V);
    expect(matrix.passes).toBe(2);
    expect(relDiff(ours, dense)).toBeLessThan(1e-12);
    const stats = await kernelMatrixStats(matrix);
    expect(await fullKernelTargetAlignment(matrix, labels, V, stats)).toBe(ours);
    expect(matrix.passes).toBe(4);
    matrix.dispose();
  });

  it('mutations: a changed same-output same-class entry, or an entry between outputs, moves it as the dense value moves', async () => {
    const V = 3;
    const labels = [0, 1, 0, 2, 1, 0];
    const n = labels.length * V;
    const K = psdKernel(n, 10, 8);
    const base = await fullKernelTargetAlignment(denseKernelMatrix(K, n), labels, V);
    // (u, i), (v, j): same class, same output (in ⟨K, T⟩); same class, other outputs (only through
    // the row sums and ‖HKH‖); other classes, same output
    for (const [u, i, v, j] of [
      [0, 1, 2, 1],
      [0, 1, 2, 2],
      [1, 0, 3, 0],
    ] as const) {
      const M = Float64Array.from(K);
      const a = (u * V + i) * n + v * V + j;
      const b = (v * V + j) * n + u * V + i;
      M[a] = M[a]! + 0.5;
      M[b] = M[b]! + 0.5;
      const dense = await kernelTargetAlignmentDense(M, n, oneHotKron(labels, V));
      const ours = await fullKernelTargetAlignment(denseKernelMatrix(M, n), labels, V);
      expect(Math.abs(dense - base)).toBeGreaterThan(1e-4);
      expect(relDiff(ours, dense)).toBeLessThan(1e-12);
    }
  });

  it('streamed from a .npy file (float64 and float32) equals in memory', async () => {
    const V = 4;
    const labels = [1, 1, 0, 3, 2, 2, 2, 0, 1];
    const n = labels.length * V;
    const K = psdKernel(n, 20, 11);
    const ours = await fullKernelTargetAlignment(denseKernelMatrix(K, n), labels, V);
    const file = path.join(dir, 'full.npy');
    await writeNpy(file, { dtype: 'float64', shape: [n, n], data: K });
    const streamed = await npyKernelMatrix(file, { panelBytes: 7 * n * 8, residency: 'stream' });
    expect(await fullKernelTargetAlignment(streamed, labels, V)).toBe(ours);
    const K32 = Float32Array.from(K);
    const file32 = path.join(dir, 'full32.npy');
    await writeNpy(file32, { dtype: 'float32', shape: [n, n], data: K32 });
    const streamed32 = await npyKernelMatrix(file32, { panelBytes: 5 * n * 4, residency: 'stream' });
    const ours32 = await fullKernelTargetAlignment(streamed32, labels, V);
    // float32 entries summed in float64: the dense value of the same entries in float64 arithmetic;
    // the dense product of a float32 matrix sums in float32 (≈ 1e-7 relative)
    const targets = oneHotKron(labels, V);
    expect(
      relDiff(ours32, await kernelTargetAlignmentDense(Float64Array.from(K32), n, targets)),
    ).toBeLessThan(1e-12);
    expect(relDiff(ours32, await kernelTargetAlignmentDense(K32, n, targets))).toBeLessThan(1e-6);
  });

  it('NaN when HTH = 0 (one class, V = 1) or HKH = 0, like the dense computation; bad input is an InvalidArgumentError', async () => {
    const K = psdKernel(6, 3, 1);
    expect(await fullKernelTargetAlignment(denseKernelMatrix(K, 6), [2, 2, 2, 2, 2, 2], 1)).toBeNaN();
    expect(await kernelTargetAlignmentDense(K, 6, classKron([0, 0, 0, 0, 0, 0], 1, 1))).toBeNaN();
    const constant = new Float64Array(36).fill(3);
    expect(await fullKernelTargetAlignment(denseKernelMatrix(constant, 6), [0, 1, 0], 2)).toBeNaN();
    expect(await kernelTargetAlignmentDense(constant, 6, oneHotKron([0, 1, 0], 2))).toBeNaN();
    const m = denseKernelMatrix(K, 6);
    await expect(fullKernelTargetAlignment(m, [0, 1], 2)).rejects.toThrow(
      /labels: expected 3 integer labels/,
    );
    await expect(fullKernelTargetAlignment(m, [0, 1.5, 0], 2)).rejects.toThrow(
      /labels\[1\]: expected an integer/,
    );
    // −1: a store's unlabelled point (all −1 would otherwise be one class and a meaningless value).
    await expect(fullKernelTargetAlignment(m, [-1, -1, -1], 2)).rejects.toThrow(
      /labels\[0\]: expected an integer class label ≥ 0 \(a kernel store marks unlabelled points with −1/,
    );
    const other = await kernelMatrixStats(denseKernelMatrix(psdKernel(4, 2, 1), 4));
    await expect(fullKernelTargetAlignment(m, [0, 1, 0], 2, other)).rejects.toThrow(/stats: expected/);
    await expect(fullKernelTargetAlignment(m, [0, 1], 4)).rejects.toThrow(
      /V: expected a positive integer dividing/,
    );
    await expect(fullKernelTargetAlignment(m, [0, 1, 0, 1, 0, 1], 0)).rejects.toThrow(InvalidArgumentError);
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
