import { describe, expect, it } from 'vitest';
import { FitnessOperator } from '../../src/dynamics/operator.js';
import { softmax } from '../../src/dynamics/types.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { Rng } from '../../src/util/rng.js';
import { fitnessNaive, randomProblem } from './reference.js';

/** residuals e_y − softmax(z) of the first N rows of the logits */
function residualOf(z: Float64Array, labels: Int32Array, V: number): Float64Array {
  const N = labels.length;
  const p = softmax(z.subarray(0, N * V), V);
  for (let u = 0; u < N; u++) {
    for (let i = 0; i < V; i++) p[u * V + i] = -p[u * V + i]!;
    p[u * V + labels[u]!] += 1;
  }
  return p;
}

/** max over points of max_i |(φ̃_i) − (φ_i − φ_{V−1})|, relative to max |φ| */
function reducedError(out: Float64Array, phi: Float64Array, V: number): number {
  let d = 0;
  let m = 0;
  for (let a = 0; a < phi.length / V; a++) {
    for (let i = 0; i < V; i++) {
      const expected = phi[a * V + i]! - phi[a * V + V - 1]!;
      d = Math.max(d, Math.abs(out[a * V + i]! - expected));
      m = Math.max(m, Math.abs(phi[a * V + i]!));
    }
  }
  return d / m;
}

describe('FitnessOperator', () => {
  it('equals the naive full-kernel fitness up to the per-point constant, for every backend and thread count', () => {
    for (const [N, M, V] of [
      [1, 0, 2],
      [3, 2, 3],
      [7, 5, 4],
      [13, 3, 2],
      [21, 6, 10],
    ] as const) {
      const pr = randomProblem(N * 100 + M * 10 + V, N, M, V);
      const r = residualOf(pr.initialLogits, pr.labels, V);
      const rng = new Rng(9);
      const w = Float64Array.from({ length: N }, () => rng.uniform());
      const phi = fitnessNaive(pr.kernelAll, N, pr.P, V, r, w);
      for (const [backend, threads] of [
        ['js', 1],
        ['wasm', 1],
        ['wasm', 2],
        ['wasm', 3],
      ] as const) {
        const op = new FitnessOperator(
          { numClasses: V, train: pr.train, observe: pr.observe },
          { backend, threads },
        );
        expect(op.backend).toBe(backend);
        expect(op.threads).toBe(threads);
        expect(op.numTracked).toBe(N + M);
        const out = new Float64Array(pr.P * V).fill(Number.NaN);
        op.apply(r, w, out);
        // reduced φ̃ has a zero last entry and equals φ − φ_{V−1} to float error
        for (let a = 0; a < pr.P; a++) expect(out[a * V + V - 1]).toBe(0);
        expect(reducedError(out, phi, V)).toBeLessThan(1e-13);
        // scalar weight = same weight everywhere
        const out2 = new Float64Array(pr.P * V);
        op.apply(r, 0.25, out2);
        const phi2 = fitnessNaive(pr.kernelAll, N, pr.P, V, r, new Float64Array(N).fill(0.25));
        expect(reducedError(out2, phi2, V)).toBeLessThan(1e-13);
        op.dispose();
      }
    }
  });

  it('splits a large problem over worker threads with the same result', () => {
    const N = 120;
    const M = 30;
    const V = 10;
    const pr = randomProblem(5, N, M, V, 8);
    const r = residualOf(pr.initialLogits, pr.labels, V);
    const single = new FitnessOperator(
      { numClasses: V, train: pr.train, observe: pr.observe },
      { threads: 1 },
    );
    const multi = new FitnessOperator(
      { numClasses: V, train: pr.train, observe: pr.observe },
      { threads: 2 },
    );
    expect(multi.threads).toBe(2);
    const a = new Float64Array(pr.P * V);
    const b = new Float64Array(pr.P * V);
    for (let rep = 0; rep < 3; rep++) {
      single.apply(r, 1 / N, a);
      multi.apply(r, 1 / N, b);
      let d = 0;
      let m = 0;
      for (let i = 0; i < a.length; i++) {
        d = Math.max(d, Math.abs(a[i]! - b[i]!));
        m = Math.max(m, Math.abs(a[i]!));
      }
      expect(d / m).toBeLessThan(1e-13);
    }
    single.dispose();
    multi.dispose();
    expect(() => multi.apply(r, 1, b)).toThrow(/after dispose/);
  });

  it('accepts float32 kernels and symmetrises small asymmetries', () => {
    const pr = randomProblem(3, 6, 2, 3);
    const NV = 6 * 3;
    const f32 = Float32Array.from(pr.train);
    const maxAbs = f32.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    // Perturb one entry of the lower block K(1, 0) below the tolerance (1e-4): it is measured, and
    // ignored (the upper blocks are used), so the product is the unperturbed one.
    const at = (1 * 3 + 0) * NV + (0 * 3 + 2);
    const mirror = (0 * 3 + 2) * NV + (1 * 3 + 0);
    f32[at] = f32[at]! + 1e-5 * maxAbs;
    const asymmetry = Math.abs(f32[at]! - f32[mirror]!) / maxAbs;
    const op = new FitnessOperator({ numClasses: 3, train: f32, observe: Float32Array.from(pr.observe) });
    expect(op.asymmetry / asymmetry).toBeCloseTo(1, 9);
    f32[at] = f32[at]! + 1e-3 * maxAbs;
    expect(() => new FitnessOperator({ numClasses: 3, train: f32 })).toThrow(/symmetric/);
    const r = residualOf(pr.initialLogits, pr.labels, 3);
    const out = new Float64Array(pr.P * 3);
    op.apply(r, 1 / 6, out);
    const phi = fitnessNaive(pr.kernelAll, 6, pr.P, 3, r, new Float64Array(6).fill(1 / 6));
    expect(reducedError(out, phi, 3)).toBeLessThan(1e-6); // float32 rounding of K
  });

  it('rejects bad kernels with errors that name the argument', () => {
    const pr = randomProblem(4, 4, 1, 3);
    const asym = Float64Array.from(pr.train);
    asym[1] += 1; // K(0,0)_{01} no longer equals K(0,0)_{10}
    expect(() => new FitnessOperator({ numClasses: 3, train: asym })).toThrow(
      /kernel.train: expected a symmetric/,
    );
    expect(() => new FitnessOperator({ numClasses: 3, train: new Float64Array(10) })).toThrow(
      InvalidArgumentError,
    );
    expect(() => new FitnessOperator({ numClasses: 1, train: pr.train })).toThrow(/numClasses/);
    expect(
      () => new FitnessOperator({ numClasses: 3, train: pr.train, observe: new Float64Array(7) }),
    ).toThrow(/kernel.observe/);
    const nan = Float64Array.from(pr.train);
    nan[0] = Number.NaN;
    expect(() => new FitnessOperator({ numClasses: 3, train: nan })).toThrow(/finite/);
    expect(() => new FitnessOperator({ numClasses: 3, train: pr.train }, { threads: 0 })).toThrow(/threads/);
    expect(() => new FitnessOperator({ numClasses: 3, train: [1, 2] as unknown as Float64Array })).toThrow(
      /kernel.train/,
    );
  });
});
