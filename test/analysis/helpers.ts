// Shared fixtures of the analysis tests: seeded PSD kernels with a decaying spectrum.
import { spawnSync } from 'node:child_process';
import { Rng } from '../../src/util/rng.js';
import { PYTHON } from '../io/helpers.js';

/** K = J diag(s) Jᵀ with J ~ N(0,1) [n, r] and s_q = exp(−q/decay): PSD, eigenvalues decaying. */
export function psdKernel(n: number, r: number, seed: number, decay = 20): Float64Array {
  const rng = new Rng(seed);
  const J = Float64Array.from({ length: n * r }, () => rng.normal());
  const K = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let q = 0; q < r; q++) s += J[i * r + q]! * J[j * r + q]! * Math.exp(-q / decay);
      K[i * n + j] = s;
      K[j * n + i] = s;
    }
  }
  return K;
}

/** Seeded integer labels in [0, V). */
export function randomLabels(n: number, V: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(V));
}

export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
  }
  return d / scale;
}

/** SciPy importable from Debian's Python (python3-scipy); in CI its absence must fail the tests. */
export const RUN_SCIPY_TESTS =
  spawnSync(PYTHON, ['-c', 'import scipy.linalg'], { encoding: 'utf8' }).status === 0 ||
  Boolean(process.env.CI);

/** Plain-loop reference: form H A H and H B H explicitly, then ⟨·,·⟩_F / (‖·‖ ‖·‖). */
export function referenceAlignment(a: ArrayLike<number>, b: ArrayLike<number>, n: number): number {
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
