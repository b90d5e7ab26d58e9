// The tridiagonal reduction's range kernels (src/analysis/wasm-eigh.ts) and its split over a worker
// thread (src/analysis/eigh.ts): kernels against float64 loops; 1 and 2 threads bitwise equal and
// equal to the plain-loop solver within rounding.
import { describe, expect, it } from 'vitest';
import { factoredSymmetricEigen, symmetricEigen } from '../../src/analysis/eigh.js';
import { eighKernels } from '../../src/analysis/wasm-eigh.js';
import { EntkError, InvalidArgumentError } from '../../src/errors.js';
import { wasmApi } from '../../src/util/index.js';
import { Rng } from '../../src/util/rng.js';
import { psdKernel } from './helpers.js';

const bitwiseEqual = (a: Float64Array, b: Float64Array) =>
  a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

describe('tridiagonal reduction kernels', () => {
  it('symvRange and syr2kRange equal float64 loops on ragged sizes and column ranges (5e-12 absolute)', () => {
    const memory = new wasmApi!.Memory({ initial: 24 });
    const k = eighKernels(memory);
    expect(k).not.toBeNull();
    const rng = new Rng(11);
    let worst = 0;
    let cases = 0;
    // 300 > 2 row tiles of the panel update (ROW_TILE = 128)
    for (const n of [5, 8, 13, 37, 300]) {
      const P = 3;
      // byte layout: W n², u, g, acc, next (n each), U, Q (P·n each)
      const at = { u: n * n, g: n * n + n, acc: n * n + 2 * n, next: n * n + 3 * n, U: n * n + 4 * n };
      const Qat = at.U + P * n;
      const f64 = (start: number, length: number) => new Float64Array(memory.buffer, start * 8, length);
      for (let i = 1; i <= n; i += n > 100 ? 23 : 1)
        for (const j0 of n > 100
          ? [0, 1, 127, 128, 200, i].filter((j) => j <= i)
          : Array.from({ length: i + 1 }, (_, j) => j))
          for (const j1 of new Set([j0, Math.min(i, j0 + 1), Math.min(i, j0 + 2), Math.min(i, j0 + 5), i])) {
            const W = f64(0, n * n);
            const u = f64(at.u, n);
            const [g, acc, next] = [f64(at.g, n), f64(at.acc, n), f64(at.next, n)];
            const [U, Q] = [f64(at.U, P * n), f64(Qat, P * n)];
            for (const v of [W, u, U, Q]) for (let q = 0; q < v.length; q++) v[q] = rng.normal();
            g.fill(99);
            acc.fill(77);
            next.fill(55);
            const W0 = Float64Array.from(W);
            k!.symvRange(0, n, at.u * 8, at.g * 8, at.acc * 8, at.next * 8, j0, j1, i);
            const gRef = new Float64Array(n).fill(99);
            const accRef = new Float64Array(n).fill(77);
            const nextRef = new Float64Array(n).fill(55);
            for (let q = j0; q < i; q++) accRef[q] = 0;
            for (let j = j0; j < j1; j++) {
              let s = 0;
              for (let q = j; q < i; q++) {
                s += W0[j * n + q]! * u[q]!;
                if (q > j) accRef[q] = accRef[q]! + W0[j * n + q]! * u[j]!;
              }
              gRef[j] = s;
              nextRef[j] = W0[j * n + i - 1]!;
            }
            for (let q = 0; q < n; q++)
              worst = Math.max(
                worst,
                Math.abs(g[q]! - gRef[q]!),
                Math.abs(acc[q]! - accRef[q]!),
                Math.abs(next[q]! - nextRef[q]!),
              );
            next.fill(55);
            k!.syr2kRange(0, n, at.U * 8, Qat * 8, P, j0, j1, i, at.next * 8);
            const Wref = Float64Array.from(W0);
            nextRef.fill(55);
            for (let j = j0; j < j1; j++) {
              for (let q = j; q < i; q++)
                for (let p = 0; p < P; p++)
                  Wref[j * n + q] =
                    Wref[j * n + q]! - (U[p * n + j]! * Q[p * n + q]! + Q[p * n + j]! * U[p * n + q]!);
              nextRef[j] = Wref[j * n + i - 1]!;
            }
            for (let q = 0; q < n * n; q++) worst = Math.max(worst, Math.abs(W[q]! - Wref[q]!));
            for (let q = 0; q < n; q++) worst = Math.max(worst, Math.abs(next[q]! - nextRef[q]!));
            cases++;
          }
    }
    expect(cases).toBeGreaterThan(1000);
    // symvRange reorders sums of ≤ 300 products of N(0, 1) entries (partial sums ≲ 4√300 ≈ 70 in size):
    // ≲ n·ε·70 ≈ 300 · 2.2e-16 · 70 ≈ 5e-12; syr2kRange subtracts in the loops' order (exact)
    expect(worst).toBeLessThan(5e-12);
  });
});

describe('the reduction on two threads', () => {
  // active blocks of ≥ 768 columns (THREAD_MIN_ACTIVE) go to the worker thread: the first 132 steps
  const n = 901;
  const K = psdKernel(n, 300, 7);
  for (let i = 0; i < n; i++) K[i * n + i] = K[i * n + i]! - 40; // indefinite
  const C = 7; // ≥ 4: the products with U split their columns over the worker thread too
  const y = Float64Array.from({ length: n * C }, (_, i) => Math.sin(0.7 * i));

  it('factoredSymmetricEigen: 1 and 2 threads bitwise equal; values and K y as the plain loops', () => {
    const one = factoredSymmetricEigen(K, n, { threads: 1 });
    const two = factoredSymmetricEigen(K, n, { threads: 2 });
    expect(bitwiseEqual(one.values, two.values)).toBe(true);
    const p1 = one.projectT(y, C);
    const p2 = two.projectT(y, C);
    expect(bitwiseEqual(p1, p2)).toBe(true);
    expect(bitwiseEqual(one.combine(p1, C), two.combine(p2, C))).toBe(true);
    const js = symmetricEigen(K, n, { backend: 'js', vectors: false });
    const scale = Math.max(Math.abs(js.values[0]!), Math.abs(js.values[n - 1]!));
    for (let j = 0; j < n; j++) expect(Math.abs(two.values[j]! - js.values[j]!)).toBeLessThan(1e-12 * scale);
    // U (λ ⊙ Uᵀ y) = K y against float64 loops
    const ky = two.combine(
      p2.map((v, i) => v * two.values[Math.floor(i / C)]!),
      C,
    );
    let worst = 0;
    for (let i = 0; i < n; i++)
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let q = 0; q < n; q++) s += K[i * n + q]! * y[q * C + c]!;
        worst = Math.max(worst, Math.abs(ky[i * C + c]! - s));
      }
    expect(worst).toBeLessThan(1e-12 * scale * n);
  });

  it('symmetricEigen: 1 and 2 threads bitwise equal; K u = λ u (1e-12)', () => {
    const one = symmetricEigen(K, n, { threads: 1 });
    const two = symmetricEigen(K, n, { threads: 2 });
    expect(bitwiseEqual(one.values, two.values)).toBe(true);
    expect(bitwiseEqual(one.vectors!, two.vectors!)).toBe(true);
    const scale = Math.max(Math.abs(two.values[0]!), Math.abs(two.values[n - 1]!));
    let worst = 0;
    for (const j of [0, 1, 100, 305, n - 1]) {
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let q = 0; q < n; q++) s += K[i * n + q]! * two.vectors![j * n + q]!;
        worst = Math.max(worst, Math.abs(s - two.values[j]! * two.vectors![j * n + i]!));
      }
    }
    expect(worst).toBeLessThan(1e-12 * scale);
  });

  it('a non-finite entry is refused', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const A = Float64Array.from(K.subarray(0, 100 * 100));
      A[57] = bad;
      expect(() => factoredSymmetricEigen(A, 100)).toThrow(EntkError);
      expect(() => symmetricEigen(A, 100)).toThrow(/entry 57 of the matrix/);
    }
  });

  it('a thread count that is not a positive integer is refused', () => {
    expect(() => factoredSymmetricEigen(K, n, { threads: 0 })).toThrow(InvalidArgumentError);
    expect(() => symmetricEigen(K, n, { threads: 1.5 })).toThrow(InvalidArgumentError);
    expect(() => symmetricEigen(K, n, { threads: -1, backend: 'js' })).toThrow(InvalidArgumentError);
  });
});
