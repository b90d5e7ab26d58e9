/**
 * Predictions and comparisons of a finetune recording (`<run>/finetune/<name>/`, written by
 * `finetune` in src/finetune/record.ts), all from the kernel stores recorded with it.
 *
 * The predictors are the entries of the registry in ./predictors.ts (names, kinds, shapes).
 *
 * Layout added to the recording:
 * ```
 * predictions/manifest.json   { format: 'entk-predictions', version: 1, options, operator,
 *                               predictors: { <name>: { kind, file, shape, dtype, sha256, seconds, stats? } } }
 * predictions/<name>.npy      float64, shapes above
 * comparison.json             metrics (see {@link Comparison})
 * ```
 */

import * as path from 'node:path';
import {
  type FitnessOperator,
  ODE_TOLERANCES,
  type OperatorSchedule,
  type Trajectory,
} from '../dynamics/index.js';
import { assertArgument, CorruptFileError, InvalidArgumentError } from '../errors.js';
import {
  type FinetuneManifest,
  type FinetuneRecording,
  operatorFromStore,
  readFinetuneRecording,
  readRecordingKernel,
} from '../finetune/index.js';
import { readNpy, writeNpy } from '../io/index.js';
import { readJsonFile, resolveInside, writeDirAtomic, writeJsonAtomic } from '../util/index.js';
import {
  type ChangeAgreement,
  changeAgreement,
  discretisationGap,
  type ErrorSummary,
  finalKl,
  type GapCurve,
  lazinessGap,
  type TrajectoryErrors,
  trajectoryErrors,
} from './metrics.js';
import {
  PREDICTOR_TABLE,
  PREDICTORS,
  type PredictorKind,
  type PredictorName,
  type PredictorResult,
  predictor,
} from './predictors.js';

export const PREDICTIONS_DIR = 'predictions';
export const PREDICTIONS_FORMAT = 'entk-predictions';
export const COMPARISON_JSON = 'comparison.json';

export interface PredictOptions {
  /** Predictors to run. Default: all that apply (the refreshed ones need a recording with refreshed kernels). */
  predictors?: PredictorName[];
  /** POP-ODE relative tolerance. Default {@link ODE_TOLERANCES} (1e-6). */
  rtol?: number;
  /** POP-ODE absolute tolerance. Default {@link ODE_TOLERANCES} (1e-9). */
  atol?: number;
  /** Threads of the fitness operator (see FitnessOperator). Default 'auto'. */
  threads?: number | 'auto';
}

export interface PredictionEntry {
  kind: PredictorKind;
  file: string;
  shape: number[];
  dtype: 'float64';
  sha256: string;
  seconds: number;
  /** POP-ODE: integrator statistics. */
  stats?: Record<string, number>;
}

export interface PredictionsManifest {
  format: typeof PREDICTIONS_FORMAT;
  version: 1;
  createdAt: string;
  options: { rtol: number; atol: number };
  operator: { backend: string; threads: number; asymmetry: number; prepareSeconds: number };
  predictors: Partial<Record<PredictorName, PredictionEntry>>;
}

/** Run the predictors on a recording and write `predictions/`. Returns the manifest. */
export async function predictRecording(
  dir: string,
  options: PredictOptions = {},
): Promise<PredictionsManifest> {
  const rec = await readFinetuneRecording(dir);
  const m = rec.manifest;
  const refreshed = m.kernels.length > 1;
  const requested =
    options.predictors ?? PREDICTOR_TABLE.filter((p) => refreshed || !p.refreshed).map((p) => p.name);
  assertArgument(
    Array.isArray(requested) && requested.length > 0,
    'predictors',
    requested,
    `a non-empty list of ${PREDICTORS.join(', ')}`,
  );
  for (const p of requested) {
    if (!refreshed && predictor(p, 'predictors').refreshed) {
      throw new InvalidArgumentError(
        'predictors',
        p,
        "a recording with refreshed kernels (run 'entk finetune --refresh-every')",
      );
    }
  }
  const rtol = options.rtol ?? ODE_TOLERANCES.rtol;
  const atol = options.atol ?? ODE_TOLERANCES.atol;
  assertArgument(rtol > 0 && Number.isFinite(rtol), 'rtol', rtol, 'a positive number');
  assertArgument(atol >= 0 && Number.isFinite(atol), 'atol', atol, 'a number ≥ 0');
  const V = m.numClasses;
  const N = rec.numTrain;
  const P = N + rec.numObserve;
  const problem = {
    numClasses: V,
    labels: rec.labels,
    initialLogits: rec.trajectory.logProbs.slice(0, P * V),
  };

  const needRefreshed = requested.some((p) => predictor(p).refreshed);
  const prepStart = performance.now();
  const operators: FitnessOperator[] = [];
  const kernelSteps = needRefreshed ? m.kernels.map((k) => k.step) : [0];
  try {
    for (const step of kernelSteps) {
      const store = await readRecordingKernel(rec, step);
      operators.push(
        operatorFromStore(store, m.finetune.ids, m.observe.ids, { threads: options.threads ?? 'auto' }),
      );
    }
    const prepareSeconds = (performance.now() - prepStart) / 1000;
    const frozen = operators[0]!;
    const schedule: OperatorSchedule = needRefreshed ? { steps: kernelSteps, operators } : frozen;
    const results: (PredictorResult & { name: PredictorName; kind: PredictorKind; seconds: number })[] = [];
    const steps = m.recordedSteps;
    for (const name of requested) {
      const t = performance.now();
      const { kind, run } = predictor(name);
      const r = run({
        frozen,
        refreshed: schedule,
        problem,
        actual: rec.trajectory,
        learningRate: m.learningRate,
        schedule: m.schedule,
        rtol,
        atol,
      });
      results.push({ name, kind, ...r, seconds: (performance.now() - t) / 1000 });
    }
    const T = steps.length;
    const manifest: PredictionsManifest = {
      format: PREDICTIONS_FORMAT,
      version: 1,
      createdAt: new Date().toISOString(),
      options: { rtol, atol },
      operator: {
        backend: frozen.backend,
        threads: frozen.threads,
        asymmetry: frozen.asymmetry,
        prepareSeconds,
      },
      predictors: {},
    };
    await writeDirAtomic(path.join(dir, PREDICTIONS_DIR), async (tmp) => {
      for (const r of results) {
        const shape = r.kind === 'trajectory' ? [T, P, V] : [T - 1, P, V];
        const file = `${r.name}.npy`;
        const written = await writeNpy(path.join(tmp, file), { dtype: 'float64', shape, data: r.data });
        manifest.predictors[r.name] = {
          kind: r.kind,
          file,
          shape,
          dtype: 'float64',
          sha256: written.sha256,
          seconds: r.seconds,
          stats: r.stats,
        };
      }
      await writeJsonAtomic(path.join(tmp, 'manifest.json'), manifest);
    });
    return manifest;
  } finally {
    for (const op of operators) op.dispose();
  }
}

/** Read `predictions/` of a recording: the manifest and every prediction array. */
export async function readPredictions(
  dir: string,
): Promise<{ manifest: PredictionsManifest; arrays: Partial<Record<PredictorName, Float64Array>> }> {
  const file = path.join(dir, PREDICTIONS_DIR, 'manifest.json');
  const manifest = await readJsonFile<PredictionsManifest>(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
    throw new InvalidArgumentError(
      'recording',
      dir,
      "a recording with predictions (run 'entk predict' first)",
    );
  });
  if (manifest?.format !== PREDICTIONS_FORMAT)
    throw new CorruptFileError(
      file,
      `format is ${JSON.stringify(manifest?.format)}, expected "${PREDICTIONS_FORMAT}"`,
    );
  const arrays: Partial<Record<PredictorName, Float64Array>> = {};
  for (const [name, entry] of Object.entries(manifest.predictors) as [PredictorName, PredictionEntry][]) {
    const f = resolveInside(path.join(dir, PREDICTIONS_DIR), entry?.file, `predictors.${name}.file`, file);
    const arr = await readNpy(f, { sha256: entry.sha256, dtype: 'float64', shape: entry.shape });
    arrays[name] = arr.data as Float64Array;
  }
  return { manifest, arrays };
}

/** Trajectory metrics of one predictor on one point subset. */
export interface TrajectoryComparison {
  logProb: ErrorSummary;
  prob: ErrorSummary;
  finalKl: { mean: number; max: number };
  /** Per point of the subset (in subset order): log-prob RMSE and final KL. */
  perPoint: { logProbRmse: number; finalKl: number }[];
  /** Per label: log-prob RMSE and max. */
  perLabel: ErrorSummary[];
  /** log-prob RMSE per recorded step. */
  perStep: number[];
}

/** Metrics of one point subset ('all', 'finetune' or 'observe'). */
export interface SubsetComparison {
  /** Point indices [start, end) of the subset in the tracked order. */
  points: [number, number];
  trajectories: Partial<Record<PredictorName, TrajectoryComparison>>;
  changes: Partial<Record<PredictorName, ChangeAgreement>>;
  /** Laziness gap: actual vs POP-MU (and vs refreshed POP-MU). */
  lazinessGap?: GapCurve;
  lazinessGapRefreshed?: GapCurve;
  /** Discretisation gap: POP-MU vs POP-ODE. */
  discretisationGap?: GapCurve;
}

/** `comparison.json`. */
export interface Comparison {
  format: 'entk-comparison';
  version: 1;
  createdAt: string;
  recording: string;
  learningRate: number;
  mode: FinetuneManifest['mode'];
  /** Sign-agreement threshold used. */
  signThreshold: number;
  steps: number[];
  loss: number[];
  paramDistance: number[];
  kernelDrift: {
    step: number;
    train: { relativeChange: number; distance: number };
    all: { relativeChange: number; distance: number };
  }[];
  subsets: { all: SubsetComparison; finetune: SubsetComparison; observe?: SubsetComparison };
}

/** The points [start, end) of a trajectory. */
export function selectPoints(tr: Trajectory, start: number, end: number): Trajectory {
  return {
    ...tr,
    numPoints: end - start,
    logProbs: selectRows(tr.logProbs, tr.steps.length, tr.numPoints, tr.numClasses, start, end),
  };
}

function selectRows(
  data: Float64Array,
  T: number,
  P: number,
  V: number,
  start: number,
  end: number,
): Float64Array {
  const Q = end - start;
  const out = new Float64Array(T * Q * V);
  for (let t = 0; t < T; t++) out.set(data.subarray((t * P + start) * V, (t * P + end) * V), t * Q * V);
  return out;
}

function subsetComparison(
  rec: FinetuneRecording,
  arrays: Partial<Record<PredictorName, Float64Array>>,
  start: number,
  end: number,
  signThreshold: number,
): SubsetComparison {
  const tr = rec.trajectory;
  const P = tr.numPoints;
  const V = tr.numClasses;
  const T = tr.steps.length;
  const actual = selectPoints(tr, start, end);
  const out: SubsetComparison = { points: [start, end], trajectories: {}, changes: {} };
  const trajectory = (name: PredictorName): Trajectory | null => {
    const data = arrays[name];
    if (!data || data.length !== T * P * V) return null;
    return selectPoints({ ...tr, logProbs: data }, start, end);
  };
  const errors: Partial<Record<PredictorName, TrajectoryErrors>> = {};
  for (const { name, kind } of PREDICTOR_TABLE) {
    const data = arrays[name];
    if (!data) continue;
    if (kind === 'increments') {
      const inc = selectRows(data, T - 1, P, V, start, end);
      out.changes[name] = changeAgreement(actual, inc, signThreshold);
    } else {
      const pred = trajectory(name)!;
      const e = trajectoryErrors(actual, pred);
      errors[name] = e;
      const kl = finalKl(actual, pred);
      out.trajectories[name] = {
        logProb: e.logProb.overall,
        prob: e.prob.overall,
        finalKl: { mean: kl.mean, max: kl.max },
        perPoint: e.logProb.perPoint.map((s, i) => ({ logProbRmse: s.rmse, finalKl: kl.perPoint[i]! })),
        perLabel: e.logProb.perLabel,
        perStep: e.logProb.perStep.map((s) => s.rmse),
      };
    }
  }
  const mu = trajectory('pop-mu');
  const muR = trajectory('pop-mu-refreshed');
  const ode = trajectory('pop-ode');
  if (mu) out.lazinessGap = lazinessGap(actual, mu, errors['pop-mu']);
  if (muR) out.lazinessGapRefreshed = lazinessGap(actual, muR, errors['pop-mu-refreshed']);
  if (mu && ode) out.discretisationGap = discretisationGap(mu, ode);
  return out;
}

export interface CompareOptions {
  /**
   * Sign agreement counts entries whose actual |Δ log π| exceeds this (smaller changes are at the
   * float32 resolution of the network's log-probabilities). Default 1e-6.
   */
  signThreshold?: number;
}

/** Compare a recording with its predictions and write `comparison.json`. */
export async function compareRecording(dir: string, options: CompareOptions = {}): Promise<Comparison> {
  const signThreshold = options.signThreshold ?? 1e-6;
  assertArgument(
    signThreshold >= 0 && Number.isFinite(signThreshold),
    'signThreshold',
    signThreshold,
    'a number ≥ 0',
  );
  const rec = await readFinetuneRecording(dir);
  const { arrays } = await readPredictions(dir);
  const N = rec.numTrain;
  const P = N + rec.numObserve;
  const m = rec.manifest;
  const comparison: Comparison = {
    format: 'entk-comparison',
    version: 1,
    createdAt: new Date().toISOString(),
    recording: m.name,
    learningRate: m.learningRate,
    mode: m.mode,
    signThreshold,
    steps: m.recordedSteps,
    loss: Array.from(rec.loss),
    paramDistance: Array.from(rec.paramDistance),
    kernelDrift: m.kernels.filter((k) => k.drift).map((k) => ({ step: k.step, ...k.drift! })),
    subsets: {
      all: subsetComparison(rec, arrays, 0, P, signThreshold),
      finetune: subsetComparison(rec, arrays, 0, N, signThreshold),
      ...(rec.numObserve > 0 ? { observe: subsetComparison(rec, arrays, N, P, signThreshold) } : {}),
    },
  };
  await writeJsonAtomic(path.join(dir, COMPARISON_JSON), comparison);
  return comparison;
}

/** A compact summary of a comparison (what `entk compare --json` prints). */
export function summarizeComparison(c: Comparison) {
  const s = c.subsets.all;
  return {
    recording: c.recording,
    learningRate: c.learningRate,
    steps: c.steps[c.steps.length - 1],
    finalLoss: c.loss[c.loss.length - 1],
    paramDistance: c.paramDistance[c.paramDistance.length - 1],
    kernelDrift: c.kernelDrift.length ? c.kernelDrift[c.kernelDrift.length - 1] : null,
    trajectories: Object.fromEntries(
      Object.entries(s.trajectories).map(([k, v]) => [
        k,
        {
          logProbRmse: v.logProb.rmse,
          logProbMax: v.logProb.max,
          probRmse: v.prob.rmse,
          finalKlMean: v.finalKl.mean,
        },
      ]),
    ),
    changes: Object.fromEntries(
      Object.entries(s.changes).map(([k, v]) => [
        k,
        { pearson: v.pearson, spearman: v.spearman, signAgreement: v.signAgreement },
      ]),
    ),
    lazinessGap: s.lazinessGap?.final ?? null,
    lazinessGapRefreshed: s.lazinessGapRefreshed?.final ?? null,
    discretisationGap: s.discretisationGap?.final ?? null,
  };
}
