/**
 * Test-only references for the dynamics module: deliberately naive float64 loops over the full
 * kernel (no reduction, no symmetry, no SIMD), and random problem generators.
 */

import { Rng } from '../../src/util/rng.js';
import { logLogSlope as fitLogLog } from '../../src/util/stats.js';

export interface RandomProblem {
  N: number;
  M: number;
  V: number;
  P: number;
  numParams: number;
  /** J at the P tracked points, [P·V, numParams]. */
  jacobian: Float64Array;
  /** K = J Jᵀ over all tracked points, [P·V, P·V]. */
  kernelAll: Float64Array;
  /** K(u,u'), [N·V, N·V]. */
  train: Float64Array;
  /** K(o,u), [M·V, N·V]. */
  observe: Float64Array;
  labels: Int32Array;
  initialLogits: Float64Array;
}

/** A random linearised network: J ~ N(0, scale²), K = J Jᵀ (PSD, symmetric). */
export function randomProblem(
  seed: number,
  N: number,
  M: number,
  V: number,
  numParams = 12,
  scale = 1,
  logitScale = 1,
): RandomProblem {
  const rng = new Rng(seed);
  const P = N + M;
  const jacobian = new Float64Array(P * V * numParams);
  for (let i = 0; i < jacobian.length; i++) jacobian[i] = rng.normal() * scale;
  const PV = P * V;
  const kernelAll = new Float64Array(PV * PV);
  for (let a = 0; a < PV; a++) {
    for (let b = 0; b <= a; b++) {
      let s = 0;
      for (let q = 0; q < numParams; q++) s += jacobian[a * numParams + q]! * jacobian[b * numParams + q]!;
      kernelAll[a * PV + b] = s;
      kernelAll[b * PV + a] = s;
    }
  }
  const blocks = splitKernel(kernelAll, N, M, V);
  const labels = new Int32Array(N);
  for (let u = 0; u < N; u++) labels[u] = rng.int(V);
  const initialLogits = new Float64Array(P * V);
  for (let i = 0; i < initialLogits.length; i++) initialLogits[i] = rng.normal() * logitScale;
  return { N, M, V, P, numParams, jacobian, kernelAll, ...blocks, labels, initialLogits };
}

/** Cut a full [P·V, P·V] kernel into the train [N·V, N·V] and observe [M·V, N·V] blocks. */
export function splitKernel(kernelAll: Float64Array, N: number, M: number, V: number) {
  const PV = (N + M) * V;
  const NV = N * V;
  const train = new Float64Array(NV * NV);
  const observe = new Float64Array(M * V * NV);
  for (let a = 0; a < NV; a++) for (let b = 0; b < NV; b++) train[a * NV + b] = kernelAll[a * PV + b]!;
  for (let a = 0; a < M * V; a++)
    for (let b = 0; b < NV; b++) observe[a * NV + b] = kernelAll[(NV + a) * PV + b]!;
  return { train, observe };
}

/** softmax of one row, naive. */
export function softmaxNaive(z: ArrayLike<number>, offset: number, V: number): number[] {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, z[offset + i]!);
  const e: number[] = [];
  let s = 0;
  for (let i = 0; i < V; i++) {
    e.push(Math.exp(z[offset + i]! - max));
    s += e[i]!;
  }
  return e.map((x) => x / s);
}

/**
 * The replicator right-hand side of POP-ODE in simplex form, as a deliberately naive triple loop
 * over the full kernel: for each tracked α and label i,
 * ȧ_i = a_i (φ_i − Σ_j a_j φ_j), φ_i(α) = Σ_u w_u Σ_j K_ij(α,u)(e_u − a(u))_j.
 */
export function replicatorRhsNaive(
  kernelAll: Float64Array,
  N: number,
  P: number,
  V: number,
  labels: ArrayLike<number>,
  a: Float64Array,
  weight: number,
): Float64Array {
  const PV = P * V;
  const phi = new Float64Array(PV);
  for (let alpha = 0; alpha < P; alpha++) {
    for (let i = 0; i < V; i++) {
      let s = 0;
      for (let u = 0; u < N; u++) {
        for (let j = 0; j < V; j++) {
          const r = (j === labels[u] ? 1 : 0) - a[u * V + j]!;
          s += kernelAll[(alpha * V + i) * PV + u * V + j]! * r;
        }
      }
      phi[alpha * V + i] = weight * s;
    }
  }
  const out = new Float64Array(PV);
  for (let alpha = 0; alpha < P; alpha++) {
    let mean = 0;
    for (let j = 0; j < V; j++) mean += a[alpha * V + j]! * phi[alpha * V + j]!;
    for (let i = 0; i < V; i++) out[alpha * V + i] = a[alpha * V + i]! * (phi[alpha * V + i]! - mean);
  }
  return out;
}

/** Full (unreduced) fitness φ over all tracked points, naive. */
export function fitnessNaive(
  kernelAll: Float64Array,
  N: number,
  P: number,
  V: number,
  residual: Float64Array,
  weights: ArrayLike<number>,
): Float64Array {
  const PV = P * V;
  const phi = new Float64Array(PV);
  for (let row = 0; row < PV; row++) {
    let s = 0;
    for (let u = 0; u < N; u++) {
      for (let j = 0; j < V; j++) s += kernelAll[row * PV + u * V + j]! * weights[u]! * residual[u * V + j]!;
    }
    phi[row] = s;
  }
  return phi;
}

/** max |a − b| over all entries. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/**
 * Least-squares slope of log y against log x (src/compare's logLogSlope), requiring every point to
 * take part: that one skips non-positive values, which here would hide a failed convergence.
 */
export function logLogSlope(x: number[], y: number[]): number {
  const fit = fitLogLog(x, y);
  if (fit.count !== x.length) throw new Error(`log–log fit used ${fit.count} of ${x.length} points`);
  return fit.slope;
}
