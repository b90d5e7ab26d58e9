/**
 * Predictions of a recorded finetune run from its kernels (src/dynamics), and the numbers that
 * compare them with what the network did (src/compare):
 *
 * - one-step: equation (1) applied to each recorded interval, from the actual state (frozen K);
 * - POP-MU: the multiplicative update with K frozen at the checkpoint (≡ GD of the linearised net);
 * - POP-ODE: the replicator flow (logit form, Dormand–Prince 5(4));
 * - refreshed: POP-MU with the piecewise-constant kernels recomputed along the run (when recorded).
 */

import { changeAgreement, finalKl, pearson, trajectoryErrors } from '../compare/index.js';
import {
  type BatchSchedule,
  type DynamicsProblem,
  FitnessOperator,
  oneStepPredict,
  popMu,
  popOde,
  type Trajectory,
} from '../dynamics/index.js';
import { type FinetuneRecording, readFinetuneKernel } from '../train/finetune.js';

/** Methods compared with the actual network, in display order. */
export const METHODS = ['one-step', 'POP-MU', 'POP-ODE', 'refreshed'] as const;
export type Method = (typeof METHODS)[number];

/** Everything predicted for one recording. */
export interface Predictions {
  /** Equation (1) per recorded interval, frozen K: predicted Δ log π, [T−1, P, V]. */
  oneStep: Float64Array;
  /** One-step with the refreshed kernels (null without refreshes). */
  oneStepRefreshed: Float64Array | null;
  /** Cumulative one-step prediction: log π_0 + Σ of the per-interval predictions, as a trajectory. */
  oneStepPath: Trajectory;
  popMu: Trajectory;
  popOde: Trajectory;
  /** POP-MU with refreshed kernels (null without refreshes). */
  refreshed: Trajectory | null;
  /** Integrator statistics of POP-ODE. */
  ode: { accepted: number; rejected: number; evaluations: number };
}

/** Options of {@link predictRecording}. */
export interface PredictOptions {
  /** POP-ODE relative tolerance. Default 1e-8. */
  rtol?: number;
  /** POP-ODE absolute tolerance. Default 1e-10. */
  atol?: number;
}

function operatorsOf(
  blocks: { train: Float32Array; observe: Float32Array | null },
  V: number,
): FitnessOperator {
  return new FitnessOperator({
    numClasses: V,
    train: blocks.train,
    ...(blocks.observe ? { observe: blocks.observe } : {}),
  });
}

/** Run every predictor on a recording (its kernel at step 0, and its refreshed kernels if any). */
export async function predictRecording(
  recording: FinetuneRecording,
  options: PredictOptions = {},
): Promise<Predictions> {
  const { manifest, trajectory: actual } = recording;
  const V = manifest.numClasses;
  const P = actual.numPoints;
  const eta = manifest.learningRate;
  const schedule: BatchSchedule = manifest.schedule;
  const problem: DynamicsProblem = {
    numClasses: V,
    labels: recording.labels,
    initialLogits: actual.logProbs.slice(0, P * V),
  };
  const kernelSteps = manifest.kernels.map((k) => k.step);
  const operators: FitnessOperator[] = [];
  try {
    for (const step of kernelSteps) operators.push(operatorsOf(await readFinetuneKernel(recording, step), V));
    const frozen = operators[0]!;
    const oneStep = oneStepPredict(frozen, recording.labels, actual, { eta, schedule });
    const mu = popMu(frozen, problem, { eta, numSteps: manifest.steps, schedule, record: actual.steps });
    const ode = popOde(frozen, problem, {
      eta,
      steps: actual.steps,
      rtol: options.rtol ?? 1e-8,
      atol: options.atol ?? 1e-10,
    });
    let refreshed: Trajectory | null = null;
    let oneStepRefreshed: Float64Array | null = null;
    if (operators.length > 1) {
      const schedule2 = { steps: kernelSteps, operators };
      refreshed = popMu(schedule2, problem, {
        eta,
        numSteps: manifest.steps,
        schedule,
        record: actual.steps,
      });
      oneStepRefreshed = oneStepPredict(schedule2, recording.labels, actual, { eta, schedule });
    }
    const path = new Float64Array(actual.logProbs.length);
    path.set(actual.logProbs.subarray(0, P * V));
    for (let k = 1; k < actual.steps.length; k++) {
      const o = k * P * V;
      for (let j = 0; j < P * V; j++) path[o + j] = path[o - P * V + j]! + oneStep[(k - 1) * P * V + j]!;
    }
    return {
      oneStep,
      oneStepRefreshed,
      oneStepPath: { ...actual, steps: actual.steps.slice(), logProbs: path },
      popMu: mu,
      popOde: ode.trajectory,
      refreshed,
      ode: {
        accepted: ode.stats.acceptedSteps,
        rejected: ode.stats.rejectedSteps,
        evaluations: ode.stats.rhsEvaluations,
      },
    };
  } finally {
    for (const op of operators) op.dispose();
  }
}

/** log π at the last record minus log π at the first, [P·V]. */
export function totalChange(tr: Trajectory): Float64Array {
  const n = tr.numPoints * tr.numClasses;
  const last = (tr.steps.length - 1) * n;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) out[j] = tr.logProbs[last + j]! - tr.logProbs[j]!;
  return out;
}

/** Per-interval changes of a trajectory, [T−1, P, V]. */
export function intervalChanges(tr: Trajectory): Float64Array {
  const n = tr.numPoints * tr.numClasses;
  const out = new Float64Array(Math.max(0, tr.steps.length - 1) * n);
  for (let k = 0; k + 1 < tr.steps.length; k++) {
    for (let j = 0; j < n; j++) out[k * n + j] = tr.logProbs[(k + 1) * n + j]! - tr.logProbs[k * n + j]!;
  }
  return out;
}

/** How well one predicted trajectory follows the actual one. */
export interface MethodScore {
  /** Pearson r of predicted vs actual total Δ log π (start → end) over tracked points × labels. */
  rTotal: number | null;
  /** RMS over recorded steps, points and labels of the log π difference (nats). */
  rmseLogProb: number;
  /** Largest |log π difference| (nats). */
  maxLogProb: number;
  /** RMS of the probability difference. */
  rmseProb: number;
  /** Mean over tracked points of KL(actual ‖ predicted) at the last step (nats). */
  finalKl: number;
  /** RMS log π difference per recorded step. */
  perStep: number[];
}

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** Score a predicted trajectory against the actual one. */
export function scoreTrajectory(actual: Trajectory, predicted: Trajectory): MethodScore {
  const errors = trajectoryErrors(actual, predicted);
  return {
    rTotal: finiteOrNull(pearson(totalChange(predicted), totalChange(actual))),
    rmseLogProb: errors.logProb.overall.rmse,
    maxLogProb: errors.logProb.overall.max,
    rmseProb: errors.prob.overall.rmse,
    finalKl: finalKl(actual, predicted).mean,
    perStep: errors.logProb.perStep.map((e) => e.rmse),
  };
}

/** Scores of every method for one recording. */
export interface RecordingScores {
  /** Recorded steps. */
  steps: number[];
  /** Per method: trajectory scores ('one-step' is its cumulative path). */
  methods: Partial<Record<Method, MethodScore>>;
  /** Equation (1) per interval: Pearson, Spearman and sign agreement with the actual Δ log π. */
  oneStepChange: {
    pearson: number | null;
    spearman: number | null;
    signAgreement: number | null;
    count: number;
  };
  /** Same with the refreshed kernels (null without refreshes). */
  oneStepRefreshedChange: {
    pearson: number | null;
    spearman: number | null;
    signAgreement: number | null;
    count: number;
  } | null;
}

function agreement(actual: Trajectory, predicted: Float64Array) {
  const a = changeAgreement(actual, predicted);
  return {
    pearson: finiteOrNull(a.pearson),
    spearman: finiteOrNull(a.spearman),
    signAgreement: finiteOrNull(a.signAgreement),
    count: a.count,
  };
}

/** Score every prediction of a recording. */
export function scoreRecording(actual: Trajectory, p: Predictions): RecordingScores {
  const methods: Partial<Record<Method, MethodScore>> = {
    'one-step': scoreTrajectory(actual, p.oneStepPath),
    'POP-MU': scoreTrajectory(actual, p.popMu),
    'POP-ODE': scoreTrajectory(actual, p.popOde),
  };
  if (p.refreshed) methods.refreshed = scoreTrajectory(actual, p.refreshed);
  return {
    steps: actual.steps.slice(),
    methods,
    oneStepChange: agreement(actual, p.oneStep),
    oneStepRefreshedChange: p.oneStepRefreshed ? agreement(actual, p.oneStepRefreshed) : null,
  };
}
