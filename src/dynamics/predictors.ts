/**
 * The lazy-training predictors of docs/theory.md#lazy-training, all driven by a {@link FitnessOperator} (the kernel
 * frozen at the checkpoint, or piecewise-constant refreshed kernels):
 *
 * - {@link oneStepPredict}: equation (1) applied to each recorded step of an actual run;
 * - {@link popMu}: the note's multiplicative update (POP-MU), literally in simplex form;
 * - {@link popOde}: the coupled replicator ODE (POP-ODE), in logit form `ż = φ` or the note's
 *   simplex form `ȧ = a ⊙ (φ − ⟨a, φ⟩)`, integrated by Dormand–Prince 5(4) with dense output.
 *
 * Signs: η < 0 (gradient ascent) flips every predicted change. POP-ODE integrates the flow in
 * the time `t = n·|η|` of the discrete run: `ż = sign(η) φ`.
 */
import { assertArgument, EntkError, InvalidArgumentError } from '../errors.js';
import { dopri5, ODE_TOLERANCES, type OdeStats } from './dopri5.js';
import { FitnessOperator } from './operator.js';
import {
  addStepWeights,
  type BatchSchedule,
  checkLabels,
  checkLearningRate,
  checkSchedule,
  checkSteps,
  type DynamicsProblem,
  logSoftmaxRow,
  problemSizes,
  recordSteps,
  residuals,
  type StepOptions,
  scheduleWeights,
  softmax,
  softmaxRows,
  type Trajectory,
} from './types.js';

/**
 * The kernel the predictors use: one operator (K frozen at the checkpoint), or refreshed kernels
 * `operators[i]` in force from step `steps[i]` on (`steps[0]` must be 0; piecewise constant K_t).
 */
export type OperatorSchedule = FitnessOperator | { steps: number[]; operators: FitnessOperator[] };

function operatorList(ops: OperatorSchedule): { steps: number[]; operators: FitnessOperator[] } {
  if (ops instanceof FitnessOperator) return { steps: [0], operators: [ops] };
  assertArgument(
    Array.isArray(ops?.steps) && Array.isArray(ops?.operators) && ops.steps.length === ops.operators.length,
    'operators',
    ops,
    'a FitnessOperator or { steps, operators } of equal length',
  );
  assertArgument(
    ops.steps.length > 0 && ops.steps[0] === 0,
    'operators.steps',
    ops.steps,
    'a list starting at step 0',
  );
  checkSteps(ops.steps, 'operators.steps');
  const first = ops.operators[0]!;
  ops.operators.forEach((op, i) => {
    assertArgument(op instanceof FitnessOperator, `operators.operators[${i}]`, op, 'a FitnessOperator');
    assertArgument(
      op.numTrain === first.numTrain &&
        op.numObserve === first.numObserve &&
        op.numClasses === first.numClasses,
      `operators.operators[${i}]`,
      `${op.numTrain}+${op.numObserve} points, V = ${op.numClasses}`,
      `the sizes of operators[0] (${first.numTrain}+${first.numObserve} points, V = ${first.numClasses})`,
    );
  });
  return ops;
}

/** The operator in force at step n. */
function operatorAt(list: { steps: number[]; operators: FitnessOperator[] }, n: number): FitnessOperator {
  let i = 0;
  while (i + 1 < list.steps.length && list.steps[i + 1]! <= n) i++;
  return list.operators[i]!;
}

function checkOperatorFits(op: FitnessOperator, N: number, M: number, V: number): void {
  if (op.numTrain !== N || op.numObserve !== M || op.numClasses !== V) {
    throw new InvalidArgumentError(
      'problem',
      `${N} finetune + ${M} observation points, V = ${V}`,
      `the operator's ${op.numTrain} finetune + ${op.numObserve} observation points, V = ${op.numClasses}`,
    );
  }
}

/** Per-point `out_i = η (φ_i − ⟨π, φ⟩)` for all P points (π given as log-probabilities). */
function replicatorIncrement(
  logp: Float64Array,
  logpOffset: number,
  phi: Float64Array,
  learningRate: number,
  P: number,
  V: number,
  out: Float64Array,
  outOffset: number,
): void {
  for (let a = 0; a < P; a++) {
    const o = a * V;
    let mean = 0;
    for (let i = 0; i < V; i++) mean += Math.exp(logp[logpOffset + o + i]!) * phi[o + i]!;
    for (let i = 0; i < V; i++) out[outOffset + o + i] = learningRate * (phi[o + i]! - mean);
  }
}

export interface OneStepOptions {
  /** Learning rate η of the run (η < 0: ascent). */
  learningRate: number;
  /** The batches the run used. Default: full batch. */
  schedule?: BatchSchedule;
}

/**
 * Equation (1) applied to every recorded interval of an actual run: for the interval from
 * `actual.steps[k]` to `actual.steps[k+1]`, the predicted change of log π at every tracked point,
 *
 *     Δ̂ log π_i(α) = η Σ_{n in interval} [φ_n(α)_i − ⟨π(α), φ_n(α)⟩],  φ_n = Σ_{u∈B_n} K(α,u)(e_u − π(u)) / |B_n|,
 *
 * with π the actual distributions at `actual.steps[k]` and K the operator in force at that step
 * (frozen, or refreshed). When every step is recorded this is exactly equation (1), one step at a time.
 *
 * @param labels y_u of the N finetune points (the first N tracked points).
 * @returns predicted increments [T − 1, P, V] (interval k between records k and k+1).
 */
export function oneStepPredict(
  operators: OperatorSchedule,
  labels: ArrayLike<number>,
  actual: Trajectory,
  options: OneStepOptions,
): Float64Array {
  const list = operatorList(operators);
  const op0 = list.operators[0]!;
  const V = actual.numClasses;
  const P = actual.numPoints;
  const N = labels.length;
  checkOperatorFits(op0, N, P - N, V);
  checkLearningRate(options.learningRate);
  checkSteps(actual.steps, 'actual.steps');
  const T = actual.steps.length;
  assertArgument(
    actual.logProbs.length === T * P * V,
    'actual.logProbs',
    actual.logProbs,
    `length T·P·V = ${T * P * V}`,
  );
  const schedule = options.schedule ?? { kind: 'full' };
  checkSchedule(schedule, N);
  checkLabels(labels, V);
  const out = new Float64Array(Math.max(0, T - 1) * P * V);
  const probs = new Float64Array(N * V);
  const r = new Float64Array(N * V);
  const w = new Float64Array(N);
  const phi = new Float64Array(P * V);
  for (let k = 0; k + 1 < T; k++) {
    const base = k * P * V;
    for (let i = 0; i < N * V; i++) probs[i] = Math.exp(actual.logProbs[base + i]!);
    residuals(probs, labels, V, r);
    w.fill(0);
    for (let n = actual.steps[k]!; n < actual.steps[k + 1]!; n++) addStepWeights(schedule, n, w);
    operatorAt(list, actual.steps[k]!).apply(r, w, phi);
    replicatorIncrement(actual.logProbs, base, phi, options.learningRate, P, V, out, base);
  }
  return out;
}

export interface PopMuOptions extends StepOptions {
  /** Batches per step. Default: full batch. */
  schedule?: BatchSchedule;
}

/**
 * POP-MU (the note's discrete scheme), literally in simplex form: for every tracked point α,
 *
 *     π_{n+1}(α)_i ∝ π_n(α)_i · exp(η (φ_n(α)_i − ⟨π_n(α), φ_n(α)⟩)),
 *
 * with φ_n from the batch of step n and K from `operators` (frozen or refreshed). Probabilities
 * are kept in float64; a probability that underflows to 0 stays 0 (log-prob −∞), which happens
 * only below ~1e-308.
 */
export function popMu(
  operators: OperatorSchedule,
  problem: DynamicsProblem,
  options: PopMuOptions,
): Trajectory {
  const list = operatorList(operators);
  const { N, M, P, V } = problemSizes(problem);
  checkOperatorFits(list.operators[0]!, N, M, V);
  checkLearningRate(options.learningRate);
  const numSteps = options.steps;
  const record = recordSteps(numSteps, options.record);
  const schedule = options.schedule ?? { kind: 'full' };
  checkSchedule(schedule, N);

  const eta = options.learningRate;
  const pi = softmax(problem.initialLogits, V);
  const out = new Float64Array(record.length * P * V);
  const r = new Float64Array(N * V);
  const w = new Float64Array(N);
  const phi = new Float64Array(P * V);
  let k = 0;
  const emit = (n: number) => {
    while (k < record.length && record[k] === n) {
      const o = k * P * V;
      for (let i = 0; i < P * V; i++) out[o + i] = Math.log(pi[i]!);
      k++;
    }
  };
  emit(0);
  for (let n = 0; n < numSteps && k < record.length; n++) {
    residuals(pi, problem.labels, V, r);
    w.fill(0);
    addStepWeights(schedule, n, w);
    operatorAt(list, n).apply(r, w, phi);
    for (let a = 0; a < P; a++) {
      const o = a * V;
      let mean = 0;
      for (let i = 0; i < V; i++) mean += pi[o + i]! * phi[o + i]!;
      let sum = 0;
      for (let i = 0; i < V; i++) {
        const v = pi[o + i]! * Math.exp(eta * (phi[o + i]! - mean));
        pi[o + i] = v;
        sum += v;
      }
      if (!(sum > 0) || !Number.isFinite(sum)) {
        throw new EntkError(
          `popMu: the distribution of point ${a} degenerated at step ${n + 1} (η·φ too large)`,
        );
      }
      for (let i = 0; i < V; i++) pi[o + i] = pi[o + i]! / sum;
    }
    emit(n + 1);
  }
  return { numPoints: P, numClasses: V, steps: record.slice(), logProbs: out };
}

/**
 * POP-ODE models a discrete run of `steps` steps at learning rate `learningRate`: it outputs at the
 * times t = n·|η| of the steps n in `record` (default every step 0..steps), flowing with sign(η).
 */
export interface PopOdeOptions extends StepOptions {
  /**
   * The batches of the discrete run it models. The flow uses their small-η-limit weights
   * {@link scheduleWeights} (per-step weights averaged over the schedule's batches). Default: full batch.
   */
  schedule?: BatchSchedule;
  /** 'logit' (ż = φ; on the simplex by construction; default) or 'simplex' (the note's ȧ = a ⊙ (φ − ⟨a,φ⟩)). */
  form?: 'logit' | 'simplex';
  /** Relative tolerance of the integrator. Default {@link ODE_TOLERANCES} (1e-6). */
  rtol?: number;
  /** Absolute tolerance of the integrator. Default {@link ODE_TOLERANCES} (1e-9). */
  atol?: number;
  /** Largest integrator step, in units of t. Default Infinity. */
  maxStep?: number;
  /** Integrator step budget. Default 1 000 000. */
  maxSteps?: number;
  /** PI stabilisation of the step control (0 = SciPy's I control). Default 0.04. */
  beta?: number;
}

export interface PopOdeResult {
  trajectory: Trajectory;
  stats: OdeStats & {
    /** Simplex form: max over outputs and points of |Σ_i a_i − 1|; logit form: 0. */
    maxSimplexDefect: number;
    /** Simplex form: the smallest a_i seen at an output (may be < 0 by solver error); logit form: NaN. */
    minProbability: number;
  };
}

/**
 * POP-ODE: the coupled replicator flow of all tracked points under gradient flow on the N finetune
 * points, with the kernel frozen (docs/theory.md#pop-ode; the note's main theorem).
 *
 * Logit form: ż(α) = sign(η) φ(α), φ(α) = Σ_u w_u K(α,u)(e_u − softmax(z(u))).
 * Full batch: w_u = 1/N. Minibatches (`schedule`): w = {@link scheduleWeights}, the per-step weights
 * [u ∈ B]/|B| averaged over the schedule's batches (one cycle of a `sequence`; all T recorded steps
 * of a reshuffled run: w_u = (1/T) Σ_t [u ∈ B_t]/|B_t|). For a cyclic schedule this is the flow
 * that minibatch POP-MU follows as η → 0 at fixed horizon (each cycle lasts O(η) in t, so the
 * batches average out; gap O(η)). It equals the full-batch flow only when w_u = 1/N, e.g. when the
 * batch size divides N; a fixed cycle of unequal batches does not.
 * Simplex form: ȧ(α) = sign(η) a(α) ⊙ (φ(α) − ⟨a(α), φ(α)⟩), φ from b(u) = a(u).
 * Log-probabilities of the simplex form are log(max(a, 1e-300)).
 */
export function popOde(
  operator: FitnessOperator,
  problem: DynamicsProblem,
  options: PopOdeOptions,
): PopOdeResult {
  assertArgument(operator instanceof FitnessOperator, 'operator', operator, 'a FitnessOperator');
  const { N, M, P, V } = problemSizes(problem);
  checkOperatorFits(operator, N, M, V);
  checkLearningRate(options.learningRate);
  const record = recordSteps(options.steps, options.record);
  const form = options.form ?? 'logit';
  assertArgument(form === 'logit' || form === 'simplex', 'form', form, "'logit' or 'simplex'");
  const sign = Math.sign(options.learningRate);
  const scale = Math.abs(options.learningRate);
  const times = record.map((n) => n * scale);
  const labels = problem.labels;
  const r = new Float64Array(N * V);
  const probs = new Float64Array(N * V);
  const phi = new Float64Array(P * V);
  const schedule = options.schedule ?? { kind: 'full' };
  checkSchedule(schedule, N);
  const weight: number | Float64Array =
    schedule.kind === 'full' ? sign / N : scheduleWeights(schedule, N).map((w) => sign * w);
  const T = record.length;
  const out = new Float64Array(T * P * V);
  let maxDefect = 0;
  let minProb = Number.POSITIVE_INFINITY;

  let y0: Float64Array;
  let rhs: (t: number, y: Float64Array, dydt: Float64Array) => void;
  let onOutput: (k: number, t: number, y: Float64Array) => void;
  if (form === 'logit') {
    y0 = Float64Array.from(problem.initialLogits);
    const scratch = { probs, r };
    rhs = (_t, z, dz) => logitRhs(operator, labels, z, weight, dz, scratch);
    onOutput = (k, _t, z) => {
      const lp = out.subarray(k * P * V, (k + 1) * P * V);
      for (let a = 0; a < P; a++) logSoftmaxRow(z, a, V, lp);
    };
    minProb = Number.NaN;
  } else {
    y0 = softmax(problem.initialLogits, V);
    const scratch = { r, phi };
    rhs = (_t, a, da) => replicatorRhs(operator, labels, a, weight, da, scratch);
    onOutput = (k, _t, a) => {
      const o = k * P * V;
      for (let p = 0; p < P; p++) {
        let s = 0;
        for (let i = 0; i < V; i++) {
          const v = a[p * V + i]!;
          s += v;
          if (v < minProb) minProb = v;
          out[o + p * V + i] = Math.log(Math.max(v, 1e-300));
        }
        maxDefect = Math.max(maxDefect, Math.abs(s - 1));
      }
    };
  }
  const sol = dopri5(rhs, 0, y0, times, {
    rtol: options.rtol ?? ODE_TOLERANCES.rtol,
    atol: options.atol ?? ODE_TOLERANCES.atol,
    maxStep: options.maxStep,
    maxSteps: options.maxSteps,
    beta: options.beta,
    onOutput,
  });
  return {
    trajectory: { numPoints: P, numClasses: V, steps: record.slice(), logProbs: out },
    stats: { ...sol.stats, maxSimplexDefect: maxDefect, minProbability: minProb },
  };
}

/**
 * Right-hand side of POP-ODE in logit form: `dz = φ̃(z)`, φ from the finetune rows of `z`
 * ([P, V] logits; the last label's derivative is 0 — φ is defined up to a per-point constant).
 * `weight` is sign(η)/N for the flow of full-batch training, sign(η)·{@link scheduleWeights} [N]
 * for minibatches.
 */
export function logitRhs(
  operator: FitnessOperator,
  labels: ArrayLike<number>,
  z: Float64Array,
  weight: number | Float64Array,
  dz: Float64Array,
  scratch?: { probs: Float64Array; r: Float64Array },
): void {
  const V = operator.numClasses;
  const N = operator.numTrain;
  const probs = scratch?.probs ?? new Float64Array(N * V);
  const r = scratch?.r ?? new Float64Array(N * V);
  softmaxRows(z, N, V, probs);
  residuals(probs, labels, V, r);
  operator.apply(r, weight, dz);
}

/**
 * Right-hand side of POP-ODE in the note's simplex form: `da_i = a_i (φ_i − ⟨a, φ⟩)` for every
 * tracked point, φ from `b(u) = a(u)` of the finetune rows (`a`: [P, V] probabilities).
 */
export function replicatorRhs(
  operator: FitnessOperator,
  labels: ArrayLike<number>,
  a: Float64Array,
  weight: number | Float64Array,
  da: Float64Array,
  scratch?: { r: Float64Array; phi: Float64Array },
): void {
  const V = operator.numClasses;
  const N = operator.numTrain;
  const P = operator.numTracked;
  const r = scratch?.r ?? new Float64Array(N * V);
  const phi = scratch?.phi ?? new Float64Array(P * V);
  residuals(a, labels, V, r);
  operator.apply(r, weight, phi);
  for (let p = 0; p < P; p++) {
    const o = p * V;
    let mean = 0;
    for (let i = 0; i < V; i++) mean += a[o + i]! * phi[o + i]!;
    for (let i = 0; i < V; i++) da[o + i] = a[o + i]! * (phi[o + i]! - mean);
  }
}
