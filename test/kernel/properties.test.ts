/**
 * Structural properties of the eNTK (docs/theory.md#check-2-symmetric-and-psd):
 * closed forms, symmetry, positive semi-definiteness, consistency of the output kinds, block-wise
 * computation, parameter subsets, and tensor hygiene. Each tolerance is stated where it is used.
 */
import * as tf from '@tensorflow/tfjs';
import { EigenvalueDecomposition, Matrix } from 'ml-matrix';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { empiricalNtkFn, finiteDifferenceNtk } from '../../src/kernel/index.js';
import { buildModel } from '../../src/model/index.js';
import { normalPoints, randomizeWeights, relMaxError } from './helpers.js';

let tensorsBefore = 0;
beforeEach(() => {
  tensorsBefore = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** A small relu MLP 6 → 16 → 12 → 5 with seeded weights. */
function smallMlp(seed = 3): tf.LayersModel {
  const model = buildModel(
    { kind: 'mlp', widths: [16, 12], activation: 'relu', parameterization: 'standard' },
    { inputShape: [6], numClasses: 5, seed },
  );
  randomizeWeights(model, seed, 0.5);
  return model;
}

/** Entry (row, col) of a row-major matrix with `cols` columns. */
const at = (data: ArrayLike<number>, cols: number, row: number, col: number) => data[row * cols + col]!;

describe('closed forms', () => {
  it('linear softmax: K(x, x′) = (xᵀx′ + 1) I_V', async () => {
    const model = buildModel({ kind: 'linear' }, { inputShape: [7], numClasses: 4, seed: 1 });
    randomizeWeights(model, 5);
    const x1 = normalPoints(5, [7], 11);
    const x2 = normalPoints(3, [7], 12);
    const k = await empiricalNtkFn(model, { progress: false })(x1, x2);
    const a = x1.arraySync() as number[][];
    const b = x2.arraySync() as number[][];
    const V = 4;
    let maxErr = 0;
    for (let n = 0; n < 5; n++) {
      for (let m = 0; m < 3; m++) {
        const g = a[n]!.reduce((s, v, i) => s + v * b[m]![i]!, 0) + 1;
        for (let i = 0; i < V; i++) {
          for (let j = 0; j < V; j++) {
            const v = at(k.data, 3 * V, n * V + i, m * V + j);
            // Off-diagonal entries are exactly zero (structurally: δ_i = e_i).
            if (i !== j) expect(v).toBe(0);
            else maxErr = Math.max(maxErr, Math.abs(v - g) / Math.max(1, Math.abs(g)));
          }
        }
      }
    }
    // "Exactly" up to the float32 rounding of a 7-term dot product: |err| ≤ 1e-6·max(1, |g|).
    expect(maxErr).toBeLessThan(1e-6);
    tf.dispose([x1, x2]);
    model.dispose();
  });

  it("parameter subset 'head' equals the head's closed form (⟨a, a′⟩ + 1) I_V on penultimate features", async () => {
    const model = smallMlp();
    const x = normalPoints(6, [6], 21);
    const k = await empiricalNtkFn(model, { parameters: 'head', progress: false })(x);
    expect(k.layers).toEqual(['logits']);
    expect(k.parameterCount).toBe(12 * 5 + 5);
    // Penultimate features a(x): the model up to the last activation.
    const penultimate = tf.tidy(() => {
      let h = x;
      for (const layer of model.layers.slice(0, -1)) h = layer.apply(h) as tf.Tensor;
      return h;
    });
    const a = penultimate.arraySync() as number[][];
    penultimate.dispose();
    const V = 5;
    const ref = new Float64Array(30 * 30);
    for (let n = 0; n < 6; n++) {
      for (let m = 0; m < 6; m++) {
        const g = a[n]!.reduce((s, v, i) => s + v * a[m]![i]!, 0) + 1;
        for (let i = 0; i < V; i++) ref[(n * V + i) * 30 + m * V + i] = g;
      }
    }
    // Tolerance rule: relative max error ≤ 1e-6 (float32 dot products of length 12).
    expect(relMaxError(k.data, ref)).toBeLessThan(1e-6);
    tf.dispose([x]);
    model.dispose();
  });

  it('a named parameter subset agrees with finite differences over the same subset', async () => {
    const model = smallMlp();
    const x = normalPoints(3, [6], 22);
    for (const layers of [['dense_1'], ['dense_2', 'logits']]) {
      const k = await empiricalNtkFn(model, { parameters: layers, progress: false })(x);
      const ref = finiteDifferenceNtk(model, x, null, { parameters: layers });
      expect(k.layers).toEqual(layers);
      // Tolerance rule of correctness.test.ts: relative max error ≤ 1e-5 against float64 FD.
      expect(relMaxError(k.data, ref.data)).toBeLessThanOrEqual(1e-5);
    }
    tf.dispose([x]);
    model.dispose();
  });
});

describe('symmetry and positive semi-definiteness', () => {
  it('K(x, x′)ᵀ = K(x′, x), and the symmetric kernel is exactly symmetric', async () => {
    const model = smallMlp();
    const x1 = normalPoints(7, [6], 31);
    const x2 = normalPoints(4, [6], 32);
    const ntk = empiricalNtkFn(model, { progress: false, blockSize: 3 });
    const k12 = await ntk(x1, x2);
    const k21 = await ntk(x2, x1);
    const V = 5;
    const r = 7 * V;
    const c = 4 * V;
    const transposed = new Float32Array(r * c);
    for (let p = 0; p < c; p++) for (let q = 0; q < r; q++) transposed[q * c + p] = at(k21.data, r, p, q);
    // Different (but mathematically equal) contractions: relative max error ≤ 1e-6.
    expect(relMaxError(k12.data, transposed)).toBeLessThan(1e-6);
    // Without x2 the lower triangle of blocks is the mirror image of the upper one: bitwise.
    const k11 = await ntk(x1);
    for (let p = 0; p < r; p++)
      for (let q = 0; q < r; q++) expect(at(k11.data, r, p, q)).toBe(at(k11.data, r, q, p));
    tf.dispose([x1, x2]);
    model.dispose();
  });

  it('the full kernel is positive semi-definite (λ_min ≥ −1e-5·λ_max)', async () => {
    // NV = 100 > P = 6·4+4 + 4·5+5 = 53: K has a null space, so rounding could push eigenvalues
    // below zero; float32 rounding keeps them above −1e-5·λ_max (tolerance rule).
    const model = buildModel(
      { kind: 'mlp', widths: [4], activation: 'tanh', parameterization: 'standard' },
      { inputShape: [6], numClasses: 5, seed: 4 },
    );
    randomizeWeights(model, 9, 0.7);
    const x = normalPoints(20, [6], 41);
    const k = await empiricalNtkFn(model, { progress: false, blockSize: 7 })(x);
    const N = 100;
    const rows = Array.from({ length: N }, (_, i) => Array.from(k.data.subarray(i * N, (i + 1) * N)));
    const eig = new EigenvalueDecomposition(new Matrix(rows), { assumeSymmetric: true });
    const values = eig.realEigenvalues;
    const max = Math.max(...values);
    const min = Math.min(...values);
    expect(max).toBeGreaterThan(0);
    expect(min).toBeGreaterThanOrEqual(-1e-5 * max);
    // The null space is really there (rank ≤ P = 53), so the check is not vacuous.
    expect(values.filter((v) => Math.abs(v) < 1e-5 * max).length).toBeGreaterThanOrEqual(N - 53);
    tf.dispose([x]);
    model.dispose();
  });
});

describe('output kinds and blocks', () => {
  it('diagonal, trace and pairs agree with the full kernel', async () => {
    const model = smallMlp();
    const x1 = normalPoints(9, [6], 51);
    const x2 = normalPoints(5, [6], 52);
    const V = 5;
    const opts = { progress: false, blockSize: 4 } as const;
    const full11 = await empiricalNtkFn(model, opts)(x1);
    const full12 = await empiricalNtkFn(model, opts)(x1, x2);
    const diag = await empiricalNtkFn(model, { ...opts, output: 'diagonal' })(x1);
    const trace = await empiricalNtkFn(model, { ...opts, output: 'trace' })(x1, x2);
    const traceSym = await empiricalNtkFn(model, { ...opts, output: 'trace' })(x1);
    const pairs: Array<[number, number]> = [
      [0, 4],
      [8, 0],
      [3, 3],
      [3, 2],
    ];
    const pairRes = await empiricalNtkFn(model, { ...opts, output: 'pairs' })(x1, x2, { pairs });
    const pairSym = await empiricalNtkFn(model, { ...opts, output: 'pairs' })(x1, null, {
      pairs: [
        [2, 7],
        [5, 5],
      ],
    });
    expect(diag.shape).toEqual([9, V, V]);
    expect(trace.shape).toEqual([9, 5]);
    expect(pairRes.shape).toEqual([4, V, V]);
    // Where each ran: the batched V×V blocks on tfjs ops (float32), the matrices on entk's kernels.
    expect([diag.contraction, pairRes.contraction, trace.contraction]).toEqual(['tfjs', 'tfjs', 'wasm']);
    const diag64 = await empiricalNtkFn(model, { ...opts, output: 'diagonal', accumulation: 'float64' })(x1);
    expect(diag64.contraction).toBe('js');

    const block = (full: Float32Array | Float64Array, cols: number, n: number, m: number) => {
      const out: number[] = [];
      for (let i = 0; i < V; i++) for (let j = 0; j < V; j++) out.push(at(full, cols, n * V + i, m * V + j));
      return out;
    };
    const diagRef = Array.from({ length: 9 }, (_, n) => block(full11.data, 9 * V, n, n)).flat();
    // Different contraction paths (batched V×V vs blocks): relative max error ≤ 1e-6.
    expect(relMaxError(diag.data, diagRef)).toBeLessThan(1e-6);
    const traceRef = Array.from({ length: 9 * 5 }, (_, e) => {
      const b = block(full12.data, 5 * V, Math.floor(e / 5), e % 5);
      return b.filter((_, k) => k % (V + 1) === 0).reduce((s, v) => s + v, 0) / V;
    });
    expect(relMaxError(trace.data, traceRef)).toBeLessThan(1e-6);
    const traceSymRef = Array.from({ length: 81 }, (_, e) => {
      const b = block(full11.data, 9 * V, Math.floor(e / 9), e % 9);
      return b.filter((_, k) => k % (V + 1) === 0).reduce((s, v) => s + v, 0) / V;
    });
    expect(relMaxError(traceSym.data, traceSymRef)).toBeLessThan(1e-6);
    const pairRef = pairs.flatMap(([n, m]) => block(full12.data, 5 * V, n, m));
    expect(relMaxError(pairRes.data, pairRef)).toBeLessThan(1e-6);
    const pairSymRef = [block(full11.data, 9 * V, 2, 7), block(full11.data, 9 * V, 5, 5)].flat();
    expect(relMaxError(pairSym.data, pairSymRef)).toBeLessThan(1e-6);
    tf.dispose([x1, x2]);
    model.dispose();
  });

  it('block-wise equals one-piece (any block size, symmetric and rectangular)', async () => {
    const model = smallMlp();
    const x1 = normalPoints(11, [6], 61);
    const x2 = normalPoints(6, [6], 62);
    const one = empiricalNtkFn(model, { progress: false, blockSize: 64 });
    for (const blockSize of [1, 3, 5]) {
      const blocked = empiricalNtkFn(model, { progress: false, blockSize });
      for (const [a, b] of [
        [x1, null],
        [x1, x2],
      ] as const) {
        const r1 = await one(a, b);
        const r2 = await blocked(a, b);
        expect(r2.blockSize).toBe(blockSize);
        // Same maths, different matMul shapes: relative max error ≤ 1e-6.
        expect(relMaxError(r2.data, r1.data)).toBeLessThan(1e-6);
      }
    }
    tf.dispose([x1, x2]);
    model.dispose();
  });

  it('a small memory budget (factors recomputed block by block) gives the same kernel', async () => {
    const model = smallMlp();
    const x = normalPoints(10, [6], 63);
    const a = await empiricalNtkFn(model, { progress: false, blockSize: 2 })(x);
    const b = await empiricalNtkFn(model, { progress: false, blockSize: 2, memoryBudget: 2 ** 20 })(x);
    const c = await empiricalNtkFn(model, {
      progress: false,
      implementation: 'jacobian',
      memoryBudget: 2 ** 20,
    })(x);
    // Identical blocks and factors, only the caching differs: bitwise equal.
    expect(Array.from(b.data)).toEqual(Array.from(a.data));
    expect(relMaxError(c.data, a.data)).toBeLessThan(1e-5);
    tf.dispose([x]);
    model.dispose();
  });

  it('reads the weights at call time', async () => {
    const model = smallMlp();
    const x = normalPoints(3, [6], 64);
    const ntk = empiricalNtkFn(model, { progress: false });
    const before = await ntk(x);
    randomizeWeights(model, 77, 0.5);
    const after = await ntk(x);
    const ref = finiteDifferenceNtk(model, x);
    expect(relMaxError(after.data, ref.data)).toBeLessThanOrEqual(1e-5);
    expect(relMaxError(before.data, ref.data)).toBeGreaterThan(1e-2);
    tf.dispose([x]);
    model.dispose();
  });

  it('the tensor count does not grow over repeated calls of every kind', async () => {
    const model = smallMlp();
    const x = normalPoints(8, [6], 71);
    const start = tf.memory().numTensors;
    for (let rep = 0; rep < 3; rep++) {
      for (const output of ['full', 'diagonal', 'trace', 'pairs'] as const) {
        for (const implementation of ['structured', 'jacobian'] as const) {
          const ntk = empiricalNtkFn(model, { output, implementation, progress: false, blockSize: 3 });
          await ntk(x, output === 'diagonal' ? null : x, { pairs: [[1, 2]] });
        }
      }
      await empiricalNtkFn(model, { progress: false }).stream(x, null, () => undefined);
      expect(tf.memory().numTensors).toBe(start);
    }
    tf.dispose([x]);
    model.dispose();
  });
});
