/**
 * Predictions of a recorded finetune run, and the numbers that compare them with what the network
 * did. The predictors run through src/compare's pipeline, which stores them in the recording
 * (`predictions/*.npy`, `comparison.json` — the same files `entk predict` and `entk compare`
 * write), all from the kernels recorded with the run:
 *
 * - one-step: equation (1) applied to each recorded interval, from the actual state (frozen K);
 *   summed over the intervals it gives the "cumulative one-step (teacher-forced)" path, which is
 *   not a distribution (see {@link Predictions.oneStepPath});
 * - POP-MU: the multiplicative update with K frozen at the checkpoint (≡ GD of the linearised net);
 * - POP-ODE: the replicator flow (logit form, Dormand–Prince 5(4));
 * - refreshed: POP-MU with the piecewise-constant kernels recomputed along the run (when recorded).
 */
import {
  changeAgreement,
  compareRecording,
  finalKl,
  type PredictorName,
  predictRecording,
  readPredictions,
  trajectoryErrors,
} from '../compare/index.js';
import type { Trajectory } from '../dynamics/index.js';
import { CorruptFileError } from '../errors.js';
import { type FinetuneRecording, readFinetuneManifest, readFinetuneRecording } from '../finetune/index.js';
import { jsonNumber } from '../report/index.js';
import { pearson } from '../util/stats.js';

/** Methods compared with the actual network, in display order. */
export const METHODS = ['one-step', 'POP-MU', 'POP-ODE', 'refreshed'] as const;
export type Method = (typeof METHODS)[number];

/** How the trajectory of method 'one-step' ({@link Predictions.oneStepPath}) is labelled wherever it is shown. */
export const ONE_STEP_PATH_LABEL = 'cumulative one-step (teacher-forced)';

/** Everything predicted for one recording. */
export interface Predictions {
  /** Equation (1) per recorded interval, frozen K: predicted Δ log π, [T−1, P, V]. */
  oneStep: Float64Array;
  /** One-step with the refreshed kernels (null without refreshes). */
  oneStepRefreshed: Float64Array | null;
  /**
   * Cumulative one-step (teacher-forced) path: record k holds log π_0 + Σ_{j<k} Δ̂_j, the sum of the
   * per-interval predictions Δ̂_j, each made from the actual state at the start of interval j. Its
   * difference from the actual log π_k is the sum of the per-interval errors (the actual changes
   * telescope), so log-prob errors and the total-change correlation are meaningful; but it is not
   * a prediction of a state and its rows are not normalised (Σ_i exp ≠ 1), so probability metrics
   * (probability RMSE, KL, squeezing) are not computed on it — {@link scoreRecording} reports them
   * as null. (Renormalising would invent a distribution no predictor produced.)
   */
  oneStepPath: Trajectory;
  popMu: Trajectory;
  popOde: Trajectory;
  /** POP-MU with refreshed kernels (null without refreshes). */
  refreshed: Trajectory | null;
}

/** Options of {@link writePredictions}. */
export interface PredictionOptions {
  /** POP-ODE relative tolerance. Default 1e-8. */
  rtol?: number;
  /** POP-ODE absolute tolerance. Default 1e-10. */
  atol?: number;
}

/** Sign agreement ignores actual changes below this (float32 resolution of the network's log π). */
export const SIGN_THRESHOLD = 1e-6;

/**
 * Run the predictors on the recording in `dir` and compare them with it (src/compare): writes
 * `predictions/` and `comparison.json` into the recording.
 */
export async function writePredictions(dir: string, options: PredictionOptions = {}): Promise<void> {
  const refreshed = (await readFinetuneManifest(dir)).kernels.length > 1;
  const predictors: PredictorName[] = [
    'one-step',
    'pop-mu',
    'pop-ode',
    ...(refreshed ? (['one-step-refreshed', 'pop-mu-refreshed'] as const) : []),
  ];
  await predictRecording(dir, { predictors, rtol: options.rtol ?? 1e-8, atol: options.atol ?? 1e-10 });
  await compareRecording(dir, { signThreshold: SIGN_THRESHOLD });
}

/** Read a recording and its predictions (written by {@link writePredictions}). */
export async function loadPredictions(
  dir: string,
): Promise<{ recording: FinetuneRecording; predictions: Predictions }> {
  const recording = await readFinetuneRecording(dir);
  const { arrays } = await readPredictions(dir);
  const actual = recording.trajectory;
  const need = (name: PredictorName): Float64Array => {
    const a = arrays[name];
    if (!a) throw new CorruptFileError(dir, `predictions/${name}.npy is missing (run 'entk predict')`);
    return a;
  };
  const trajectory = (logProbs: Float64Array): Trajectory => ({
    ...actual,
    steps: actual.steps.slice(),
    logProbs,
  });
  const oneStep = need('one-step');
  const P = actual.numPoints;
  const V = actual.numClasses;
  const path = new Float64Array(actual.logProbs.length);
  path.set(actual.logProbs.subarray(0, P * V));
  for (let k = 1; k < actual.steps.length; k++) {
    const o = k * P * V;
    for (let j = 0; j < P * V; j++) path[o + j] = path[o - P * V + j]! + oneStep[(k - 1) * P * V + j]!;
  }
  return {
    recording,
    predictions: {
      oneStep,
      oneStepRefreshed: arrays['one-step-refreshed'] ?? null,
      oneStepPath: trajectory(path),
      popMu: trajectory(need('pop-mu')),
      popOde: trajectory(need('pop-ode')),
      refreshed: arrays['pop-mu-refreshed'] ? trajectory(arrays['pop-mu-refreshed']) : null,
    },
  };
}

/** log π at the last record minus log π at the first, [P·V]. */
export function totalChange(tr: Trajectory): Float64Array {
  const n = tr.numPoints * tr.numClasses;
  const last = (tr.steps.length - 1) * n;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) out[j] = tr.logProbs[last + j]! - tr.logProbs[j]!;
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
  /** RMS of the probability difference; null when the prediction is not a distribution (cumulative one-step). */
  rmseProb: number | null;
  /**
   * Mean over tracked points of KL(actual ‖ predicted) at the last step (nats); null when the
   * prediction is not a distribution (cumulative one-step).
   */
  finalKl: number | null;
  /** RMS log π difference per recorded step. */
  perStep: number[];
}

/**
 * Score a predicted trajectory against the actual one. `distributions: false` (a trajectory whose
 * rows are not normalised, the cumulative one-step path) leaves out the probability metrics
 * (`rmseProb`, `finalKl` are null). Default true.
 */
export function scoreTrajectory(
  actual: Trajectory,
  predicted: Trajectory,
  options: { distributions?: boolean } = {},
): MethodScore {
  const errors = trajectoryErrors(actual, predicted);
  const distributions = options.distributions ?? true;
  return {
    rTotal: jsonNumber(pearson(totalChange(predicted), totalChange(actual))),
    rmseLogProb: errors.logProb.overall.rmse,
    maxLogProb: errors.logProb.overall.max,
    rmseProb: distributions ? errors.prob.overall.rmse : null,
    finalKl: distributions ? finalKl(actual, predicted).mean : null,
    perStep: errors.logProb.perStep.map((e) => e.rmse),
  };
}

/** Scores of every method for one recording. */
export interface RecordingScores {
  /** Recorded steps. */
  steps: number[];
  /** Per method: trajectory scores ('one-step': its cumulative teacher-forced path, no probability metrics). */
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
  const a = changeAgreement(actual, predicted, SIGN_THRESHOLD);
  return {
    pearson: jsonNumber(a.pearson),
    spearman: jsonNumber(a.spearman),
    signAgreement: jsonNumber(a.signAgreement),
    count: a.count,
  };
}

/** Score every prediction of a recording. */
export function scoreRecording(actual: Trajectory, p: Predictions): RecordingScores {
  const methods: Partial<Record<Method, MethodScore>> = {
    'one-step': scoreTrajectory(actual, p.oneStepPath, { distributions: false }),
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
