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
  type LabelOf,
  PREDICTOR_TABLE,
  type PredictorName,
  predictorLabel,
  predictRecording,
  readPredictions,
  trajectoryErrors,
} from '../compare/index.js';
import { TIGHT_ODE_TOLERANCES, type Trajectory } from '../dynamics/index.js';
import { CorruptFileError } from '../errors.js';
import { type FinetuneRecording, readFinetuneManifest, readFinetuneRecording } from '../finetune/index.js';
import { jsonNumber } from '../report/index.js';
import { pearson } from '../util/index.js';

/** The predictors (registry names, src/compare/predictors.ts) compared with the actual network, in display order. */
export const METHODS = [
  'one-step',
  'pop-mu',
  'pop-ode',
  'pop-mu-refreshed',
] as const satisfies readonly PredictorName[];
export type Method = (typeof METHODS)[number];
/** A method's label ('one-step', 'POP-MU', 'POP-ODE', 'refreshed'): the keys of {@link RecordingScores.methods}. */
export type MethodLabel = LabelOf<Method>;

/** How the trajectory of method 'one-step' ({@link Predictions.oneStepPath}) is labelled wherever it is shown. */
export const ONE_STEP_PATH_LABEL = 'cumulative one-step (teacher-forced)';

/**
 * Everything predicted for one recording, by predictor name (the registry of src/compare/predictors.ts).
 *
 * `trajectories[name]` is log π at the recorded steps. For a predictor of kind 'increments'
 * (equation (1) per recorded interval) it is the cumulative one-step (teacher-forced) path: record k
 * holds log π_0 + Σ_{j<k} Δ̂_j, the sum of the per-interval predictions Δ̂_j, each made from the
 * actual state at the start of interval j. Its difference from the actual log π_k is the sum of the
 * per-interval errors (the actual changes telescope), so log-prob errors and the total-change
 * correlation are meaningful; but it is not a prediction of a state and its rows are not normalised
 * (Σ_i exp ≠ 1), so probability metrics (probability RMSE, KL, squeezing) are not computed on it —
 * {@link scoreRecording} reports them as null. (Renormalising would invent a distribution no
 * predictor produced.)
 */
export interface Predictions {
  trajectories: Partial<Record<PredictorName, Trajectory>>;
  /** Predicted Δ log π per recorded interval [T−1, P, V] of the 'increments' predictors. */
  increments: Partial<Record<PredictorName, Float64Array>>;
}

/** Options of {@link writePredictions}. */
export interface PredictionOptions {
  /** POP-ODE relative tolerance. Default {@link TIGHT_ODE_TOLERANCES} (1e-8). */
  rtol?: number;
  /** POP-ODE absolute tolerance. Default {@link TIGHT_ODE_TOLERANCES} (1e-10). */
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
  await predictRecording(dir, {
    predictors,
    rtol: options.rtol ?? TIGHT_ODE_TOLERANCES.rtol,
    atol: options.atol ?? TIGHT_ODE_TOLERANCES.atol,
  });
  await compareRecording(dir, { signThreshold: SIGN_THRESHOLD });
}

/** Read a recording and its predictions (written by {@link writePredictions}). */
export async function loadPredictions(
  dir: string,
): Promise<{ recording: FinetuneRecording; predictions: Predictions }> {
  const recording = await readFinetuneRecording(dir);
  const { arrays } = await readPredictions(dir);
  const actual = recording.trajectory;
  for (const name of ['one-step', 'pop-mu', 'pop-ode'] as const) {
    if (!arrays[name])
      throw new CorruptFileError(dir, `predictions/${name}.npy is missing (run 'entk predict')`);
  }
  const P = actual.numPoints;
  const V = actual.numClasses;
  const trajectory = (logProbs: Float64Array): Trajectory => ({
    ...actual,
    steps: actual.steps.slice(),
    logProbs,
  });
  /** The cumulative one-step (teacher-forced) path of per-interval increments (see {@link Predictions}). */
  const cumulative = (increments: Float64Array): Float64Array => {
    const path = new Float64Array(actual.logProbs.length);
    path.set(actual.logProbs.subarray(0, P * V));
    for (let k = 1; k < actual.steps.length; k++) {
      const o = k * P * V;
      for (let j = 0; j < P * V; j++) path[o + j] = path[o - P * V + j]! + increments[(k - 1) * P * V + j]!;
    }
    return path;
  };
  const predictions: Predictions = { trajectories: {}, increments: {} };
  for (const { name, kind } of PREDICTOR_TABLE) {
    const data = arrays[name];
    if (!data) continue;
    if (kind === 'increments') predictions.increments[name] = data;
    predictions.trajectories[name] = trajectory(kind === 'increments' ? cumulative(data) : data);
  }
  return { recording, predictions };
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
  methods: Partial<Record<MethodLabel, MethodScore>>;
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
  const methods: Partial<Record<MethodLabel, MethodScore>> = {};
  for (const name of METHODS) {
    const predicted = p.trajectories[name];
    if (!predicted) continue;
    // increments predictors: their cumulative path is not a distribution (see Predictions)
    const distributions = p.increments[name] === undefined;
    methods[predictorLabel(name)] = scoreTrajectory(actual, predicted, { distributions });
  }
  const oneStepRefreshed = p.increments['one-step-refreshed'];
  return {
    steps: actual.steps.slice(),
    methods,
    oneStepChange: agreement(actual, p.increments['one-step']!),
    oneStepRefreshedChange: oneStepRefreshed ? agreement(actual, oneStepRefreshed) : null,
  };
}
