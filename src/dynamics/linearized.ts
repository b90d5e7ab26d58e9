/**
 * Exact references in plain float64, with the full kernel (no reduction): the fitness φ of
 * docs/theory.md#fitness, equation (1) for one step, and gradient descent of the linearised network
 * `f_lin(x; θ) = f(x; θ₀) + J₀(x)(θ − θ₀)` through an explicit Jacobian — the model POP-MU must
 * reproduce to float error (docs/theory.md#check-4-pop-mu-is-linearised-gd). Meant for small problems and for tests.
 */
import { assertArgument } from '../errors.js';
import {
  addStepWeights,
  type BatchSchedule,
  checkLearningRate,
  checkSchedule,
  type DynamicsProblem,
  logSoftmaxRow,
  problemSizes,
  recordSteps,
  residuals,
  type StepOptions,
  softmaxRows,
  type Trajectory,
} from './types.js';

/**
 * Fitness φ(α) = Σ_u w_u K(α, u)(e_u − π(u)) for every row point α of `kernel`.
 *
 * @param kernel K(α, u), [A·V, N·V] point-major (A row points, N finetune points).
 * @param probs π(u) of the N finetune points, [N, V].
 * @param labels y_u, length N.
 * @param weights w_u, length N (1/N for full batch).
 * @returns φ, [A, V].
 */
export function fitness(
  kernel: Float64Array | Float32Array,
  probs: Float64Array,
  labels: ArrayLike<number>,
  weights: Float64Array,
  numClasses: number,
): Float64Array {
  const V = numClasses;
  const N = labels.length;
  assertArgument(probs.length === N * V, 'probs', probs, `length N·V = ${N * V}`);
  assertArgument(weights.length === N, 'weights', weights, `length N = ${N}`);
  const NV = N * V;
  assertArgument(kernel.length % (NV * V) === 0, 'kernel', kernel, `an [A·V, ${NV}] array`);
  const A = kernel.length / (NV * V);
  const r = new Float64Array(NV);
  residuals(probs, labels, V, r);
  for (let u = 0; u < N; u++) for (let j = 0; j < V; j++) r[u * V + j] *= weights[u]!;
  const phi = new Float64Array(A * V);
  for (let row = 0; row < A * V; row++) {
    let s = 0;
    const o = row * NV;
    for (let c = 0; c < NV; c++) s += kernel[o + c]! * r[c]!;
    phi[row] = s;
  }
  return phi;
}

/**
 * Equation (1): the first-order change of log π at every row point α after one SGD step with
 * learning rate η on batch weights `weights`: `η (φ_i(α) − ⟨π(α), φ(α)⟩)`.
 *
 * @param kernel K(α, u), [A·V, N·V].
 * @param rowProbs π(α) of the A row points, [A, V].
 * @param trainProbs π(u) of the N finetune points, [N, V].
 * @returns Δ log π, [A, V].
 */
export function equationOne(
  kernel: Float64Array | Float32Array,
  rowProbs: Float64Array,
  trainProbs: Float64Array,
  labels: ArrayLike<number>,
  weights: Float64Array,
  numClasses: number,
  learningRate: number,
): Float64Array {
  checkLearningRate(learningRate);
  const V = numClasses;
  const phi = fitness(kernel, trainProbs, labels, weights, V);
  assertArgument(rowProbs.length === phi.length, 'rowProbs', rowProbs, `length A·V = ${phi.length}`);
  const out = new Float64Array(phi.length);
  for (let a = 0; a < phi.length / V; a++) {
    let mean = 0;
    for (let i = 0; i < V; i++) mean += rowProbs[a * V + i]! * phi[a * V + i]!;
    for (let i = 0; i < V; i++) out[a * V + i] = learningRate * (phi[a * V + i]! - mean);
  }
  return out;
}

export interface LinearizedGdOptions extends StepOptions {
  /** Batches per step. Default: full batch. */
  schedule?: BatchSchedule;
}

/**
 * Plain SGD (mean cross-entropy over each batch) on the linearised network
 * `z(α) = z₀(α) + J₀(α) Δθ`:  `Δθ ← Δθ + η Σ_u w_u J₀(u)ᵀ (e_u − softmax(z(u)))`.
 *
 * @param jacobian J₀ at the P tracked points, [P·V, numParams] row-major (finetune points first).
 */
export function linearizedGd(
  jacobian: Float64Array,
  problem: DynamicsProblem,
  options: LinearizedGdOptions,
): Trajectory {
  const { N, P, V } = problemSizes(problem);
  checkLearningRate(options.learningRate);
  assertArgument(
    jacobian.length % (P * V) === 0 && jacobian.length > 0,
    'jacobian',
    jacobian,
    `a [P·V, numParams] array with P·V = ${P * V}`,
  );
  const numParams = jacobian.length / (P * V);
  const numSteps = options.steps;
  const record = recordSteps(numSteps, options.record);
  const schedule = options.schedule ?? { kind: 'full' };
  checkSchedule(schedule, N);
  const z0 = problem.initialLogits;
  const theta = new Float64Array(numParams);
  const z = Float64Array.from(z0);
  const out = new Float64Array(record.length * P * V);
  const probs = new Float64Array(N * V);
  const r = new Float64Array(N * V);
  const w = new Float64Array(N);
  let k = 0;
  const emit = (n: number) => {
    while (k < record.length && record[k] === n) {
      const lp = out.subarray(k * P * V, (k + 1) * P * V);
      for (let p = 0; p < P; p++) logSoftmaxRow(z, p, V, lp);
      k++;
    }
  };
  emit(0);
  for (let n = 0; n < numSteps && k < record.length; n++) {
    softmaxRows(z, N, V, probs);
    residuals(probs, problem.labels, V, r);
    w.fill(0);
    addStepWeights(schedule, n, w);
    // Δθ += η Σ_u w_u J(u)ᵀ r_u
    for (let u = 0; u < N; u++) {
      if (w[u] === 0) continue;
      for (let j = 0; j < V; j++) {
        const c = options.learningRate * w[u]! * r[u * V + j]!;
        const row = (u * V + j) * numParams;
        for (let q = 0; q < numParams; q++) theta[q] += c * jacobian[row + q]!;
      }
    }
    // z = z0 + J Δθ
    for (let row = 0; row < P * V; row++) {
      let s = z0[row]!;
      const o = row * numParams;
      for (let q = 0; q < numParams; q++) s += jacobian[o + q]! * theta[q]!;
      z[row] = s;
    }
    emit(n + 1);
  }
  return { numPoints: P, numClasses: V, steps: record.slice(), logProbs: out };
}
