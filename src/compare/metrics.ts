/**
 * Metrics comparing what a network did with what a predictor said (docs/theory.md#where-reality-departs):
 * trajectory errors, agreement of per-step changes, end-of-run KL, and the laziness and
 * discretisation gaps. The plain statistics they use (correlations, KL, kernel drift, log–log fits)
 * are in src/util/stats.ts.
 *
 * Trajectories are {@link Trajectory} values: log π at [T, P, V] for recorded steps. Two
 * trajectories are compared at the steps they share (matched by step index, in order).
 */
import type { Trajectory } from '../dynamics/index.js';
import { assertArgument, InvalidArgumentError } from '../errors.js';
import { klDivergence, pearson, signAgreement, spearman } from '../util/index.js';

/** Root-mean-square and maximum of absolute differences. */
export interface ErrorSummary {
  rmse: number;
  max: number;
}

export interface TrajectoryErrorSet {
  /** Over all shared steps, points and labels. */
  overall: ErrorSummary;
  /** One entry per tracked point (over steps and labels). */
  perPoint: ErrorSummary[];
  /** One entry per label (over steps and points). */
  perLabel: ErrorSummary[];
  /** One entry per shared step (over points and labels). */
  perStep: ErrorSummary[];
}

export interface TrajectoryErrors {
  /** The shared step indices compared. */
  steps: number[];
  /** Errors in log π. */
  logProb: TrajectoryErrorSet;
  /** Errors in π. */
  prob: TrajectoryErrorSet;
}

function checkTrajectory(tr: Trajectory, argument: string): void {
  assertArgument(
    tr != null &&
      Number.isInteger(tr.numPoints) &&
      Number.isInteger(tr.numClasses) &&
      Array.isArray(tr.steps),
    argument,
    tr,
    'a Trajectory { numPoints, numClasses, steps, logProbs }',
  );
  assertArgument(
    tr.logProbs instanceof Float64Array &&
      tr.logProbs.length === tr.steps.length * tr.numPoints * tr.numClasses,
    `${argument}.logProbs`,
    tr.logProbs,
    `a Float64Array of length steps·P·V = ${tr.steps.length * tr.numPoints * tr.numClasses}`,
  );
}

/**
 * Pairs of record indices (ia, ib) with equal step, in order (each record used at most once).
 * Throws when the trajectories have different sizes or share no step.
 */
export function alignSteps(a: Trajectory, b: Trajectory): { steps: number[]; ia: number[]; ib: number[] } {
  checkTrajectory(a, 'actual');
  checkTrajectory(b, 'predicted');
  if (a.numPoints !== b.numPoints || a.numClasses !== b.numClasses) {
    throw new InvalidArgumentError(
      'predicted',
      `${b.numPoints} points × ${b.numClasses} labels`,
      `the actual trajectory's ${a.numPoints} points × ${a.numClasses} labels`,
    );
  }
  const steps: number[] = [];
  const ia: number[] = [];
  const ib: number[] = [];
  let j = 0;
  for (let i = 0; i < a.steps.length; i++) {
    while (j < b.steps.length && b.steps[j]! < a.steps[i]!) j++;
    if (j < b.steps.length && b.steps[j] === a.steps[i]) {
      steps.push(a.steps[i]!);
      ia.push(i);
      ib.push(j);
      j++;
    }
  }
  if (steps.length === 0) {
    throw new InvalidArgumentError(
      'predicted.steps',
      b.steps,
      `at least one step in common with [${a.steps.slice(0, 5).join(', ')}${a.steps.length > 5 ? ', …' : ''}]`,
    );
  }
  return { steps, ia, ib };
}

/** |x − y| with −∞ − (−∞) = 0 (a probability that underflowed in both). */
function absDiff(x: number, y: number): number {
  return x === y ? 0 : Math.abs(x - y);
}

class Accumulator {
  sum = 0;
  count = 0;
  max = 0;
  add(d: number): void {
    this.sum += d * d;
    this.count++;
    if (d > this.max || Number.isNaN(d)) this.max = d;
  }
  summary(): ErrorSummary {
    return { rmse: this.count ? Math.sqrt(this.sum / this.count) : 0, max: this.max };
  }
}

/** Trajectory errors in log-prob and in prob, per point, per label, per step and overall. */
export function trajectoryErrors(actual: Trajectory, predicted: Trajectory): TrajectoryErrors {
  const { steps, ia, ib } = alignSteps(actual, predicted);
  const P = actual.numPoints;
  const V = actual.numClasses;
  const mk = (n: number) => Array.from({ length: n }, () => new Accumulator());
  const lp = { overall: new Accumulator(), point: mk(P), label: mk(V), step: mk(steps.length) };
  const pr = { overall: new Accumulator(), point: mk(P), label: mk(V), step: mk(steps.length) };
  for (let k = 0; k < steps.length; k++) {
    const oa = ia[k]! * P * V;
    const ob = ib[k]! * P * V;
    for (let p = 0; p < P; p++) {
      for (let i = 0; i < V; i++) {
        const x = actual.logProbs[oa + p * V + i]!;
        const y = predicted.logProbs[ob + p * V + i]!;
        const d = absDiff(x, y);
        const e = Math.abs(Math.exp(x) - Math.exp(y));
        lp.overall.add(d);
        lp.point[p]!.add(d);
        lp.label[i]!.add(d);
        lp.step[k]!.add(d);
        pr.overall.add(e);
        pr.point[p]!.add(e);
        pr.label[i]!.add(e);
        pr.step[k]!.add(e);
      }
    }
  }
  const set = (s: typeof lp): TrajectoryErrorSet => ({
    overall: s.overall.summary(),
    perPoint: s.point.map((a) => a.summary()),
    perLabel: s.label.map((a) => a.summary()),
    perStep: s.step.map((a) => a.summary()),
  });
  return { steps, logProb: set(lp), prob: set(pr) };
}

export interface ChangeAgreement {
  /** Number of (interval, point, label) entries compared. */
  count: number;
  pearson: number;
  spearman: number;
  signAgreement: number;
  /** Per tracked point: Pearson and sign agreement over its intervals and labels. */
  perPoint: { pearson: number; signAgreement: number }[];
  /** Per label: Pearson and sign agreement over intervals and points. */
  perLabel: { pearson: number; signAgreement: number }[];
}

/**
 * Agreement of predicted and actual per-interval changes Δ log π: `predicted` is [T−1, P, V]
 * (e.g. from `oneStepPredict`), aligned with consecutive records of `actual`.
 *
 * @param threshold sign agreement counts entries with |actual Δ| > threshold. Default 0.
 */
export function changeAgreement(actual: Trajectory, predicted: Float64Array, threshold = 0): ChangeAgreement {
  checkTrajectory(actual, 'actual');
  const P = actual.numPoints;
  const V = actual.numClasses;
  const T = actual.steps.length;
  assertArgument(
    predicted instanceof Float64Array && predicted.length === Math.max(0, T - 1) * P * V,
    'predicted',
    predicted,
    `a Float64Array [T−1, P, V] of length ${Math.max(0, T - 1) * P * V}`,
  );
  const d = intervalChanges(actual);
  const K = Math.max(0, T - 1);
  /** Agreement over the entries at flat indices k·P·V + offsets[e], for every interval k. */
  const over = (offsets: number[]) => {
    const xs = new Float64Array(K * offsets.length);
    const ys = new Float64Array(K * offsets.length);
    let n = 0;
    for (let k = 0; k < K; k++) {
      for (const o of offsets) {
        xs[n] = predicted[k * P * V + o]!;
        ys[n++] = d[k * P * V + o]!;
      }
    }
    return { pearson: pearson(xs, ys), signAgreement: signAgreement(xs, ys, threshold) };
  };
  const range = <R>(n: number, f: (j: number) => R): R[] => Array.from({ length: n }, (_, j) => f(j));
  return {
    count: d.length,
    pearson: pearson(predicted, d),
    // NaN has no rank: report NaN like pearson does rather than failing the whole comparison
    spearman: predicted.some(Number.isNaN) || d.some(Number.isNaN) ? Number.NaN : spearman(predicted, d),
    signAgreement: signAgreement(predicted, d, threshold),
    perPoint: range(P, (q) => over(range(V, (i) => q * V + i))),
    perLabel: range(V, (l) => over(range(P, (p) => p * V + l))),
  };
}

/**
 * Per-interval changes Δ log π of a trajectory, [T−1, P, V]: record k+1 minus record k (0 where both
 * are equal, so that a label staying at −∞ changes by 0, not NaN).
 */
export function intervalChanges(tr: Trajectory): Float64Array {
  const n = tr.numPoints * tr.numClasses;
  const out = new Float64Array(Math.max(0, tr.steps.length - 1) * n);
  for (let k = 0; k + 1 < tr.steps.length; k++) {
    for (let j = 0; j < n; j++) {
      const a = tr.logProbs[(k + 1) * n + j]!;
      const b = tr.logProbs[k * n + j]!;
      out[k * n + j] = a === b ? 0 : a - b;
    }
  }
  return out;
}

/** KL(actual ‖ predicted) per point at the last shared step, with mean and max. */
export function finalKl(
  actual: Trajectory,
  predicted: Trajectory,
): { step: number; mean: number; max: number; perPoint: number[] } {
  const { steps, ia, ib } = alignSteps(actual, predicted);
  const k = steps.length - 1;
  const P = actual.numPoints;
  const V = actual.numClasses;
  const perPoint: number[] = [];
  for (let p = 0; p < P; p++) {
    const a = actual.logProbs.subarray(ia[k]! * P * V + p * V, ia[k]! * P * V + (p + 1) * V);
    const b = predicted.logProbs.subarray(ib[k]! * P * V + p * V, ib[k]! * P * V + (p + 1) * V);
    perPoint.push(klDivergence(a, b));
  }
  return {
    step: steps[k]!,
    mean: perPoint.reduce((s, v) => s + v, 0) / P,
    max: perPoint.reduce((s, v) => Math.max(s, v), 0),
    perPoint,
  };
}

export interface GapCurve {
  /** Shared steps. */
  steps: number[];
  /** RMS over points and labels of the log-prob difference, per step. */
  logProbRmse: number[];
  /** Euclidean norm of the stacked probability difference ‖Z − Z'‖ (the note's theorem), per step. */
  probNorm: number[];
  /** Values at the last shared step. */
  final: { logProbRmse: number; probNorm: number };
  /** Largest values over the steps. */
  max: { logProbRmse: number; probNorm: number };
}

/** Largest element (a loop: `Math.max(...xs)` overflows the call stack for long arrays). */
function maxOf(xs: number[]): number {
  let m = Number.NEGATIVE_INFINITY;
  for (const x of xs) if (x > m) m = x;
  return m;
}

/** Per-step gap of b from a: the per-step rows of their trajectory errors (computed if not given). */
function gapCurve(a: Trajectory, b: Trajectory, errors = trajectoryErrors(a, b)): GapCurve {
  const n = a.numPoints * a.numClasses;
  const steps = alignSteps(a, b).steps;
  const logProbRmse = errors.logProb.perStep.map((s) => s.rmse);
  // ‖π_a − π_b‖ over the points and labels of one step = its RMS · √(P·V)
  const probNorm = errors.prob.perStep.map((s) => s.rmse * Math.sqrt(n));
  const last = steps.length - 1;
  return {
    steps,
    logProbRmse,
    probNorm,
    final: { logProbRmse: logProbRmse[last]!, probNorm: probNorm[last]! },
    max: { logProbRmse: maxOf(logProbRmse), probNorm: maxOf(probNorm) },
  };
}

/**
 * Laziness gap (docs/theory.md#laziness-gap): actual network SGD vs POP-MU with the same η and steps — what the
 * moving kernel and the non-linearity of the network add.
 */
export function lazinessGap(actual: Trajectory, popMu: Trajectory, errors?: TrajectoryErrors): GapCurve {
  return gapCurve(actual, popMu, errors);
}

/** Discretisation gap (docs/theory.md#discretisation-gap): POP-MU vs POP-ODE, O(|η|) by the note's theorem. */
export function discretisationGap(popMu: Trajectory, popOde: Trajectory): GapCurve {
  return gapCurve(popMu, popOde);
}
