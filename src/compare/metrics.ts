/**
 * Metrics comparing what a network did with what a predictor said (docs/theory.md#where-reality-departs):
 * trajectory errors, agreement of per-step changes, end-of-run KL,
 * kernel drift, the laziness and discretisation gaps, and log–log slope fits.
 *
 * Trajectories are {@link Trajectory} values: log π at [T, P, V] for recorded steps. Two
 * trajectories are compared at the steps they share (matched by step index, in order).
 */
import type { Trajectory } from '../dynamics/types.js';
import { assertArgument, InvalidArgumentError } from '../errors.js';

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

function checkPair(x: ArrayLike<number>, y: ArrayLike<number>): void {
  assertArgument(
    x != null && y != null && x.length === y.length,
    'y',
    y?.length,
    `an array of the length of x (${x?.length})`,
  );
}

/** Pearson correlation of x and y (NaN when either is constant or n < 2). */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPair(x, y);
  const n = x.length;
  if (n < 2) return Number.NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const a = x[i]! - mx;
    const b = y[i]! - my;
    sxy += a * b;
    sxx += a * a;
    syy += b * b;
  }
  if (sxx === 0 || syy === 0) return Number.NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/**
 * Ranks 1..n, ties receiving the average of the ranks they span. ±Infinity rank below / above
 * every finite value (equal infinities tie); NaN has no rank and throws InvalidArgumentError.
 */
export function ranks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(x[i]))
      throw new InvalidArgumentError(`x[${i}]`, x[i], 'a number (NaN cannot be ranked)');
  }
  // compare, not subtract: Infinity − Infinity is NaN, which would leave the order undefined
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) =>
    x[a]! < x[b]! ? -1 : x[a]! > x[b]! ? 1 : 0,
  );
  const r = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && x[order[j + 1]!] === x[order[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[order[k]!] = avg;
    i = j + 1;
  }
  return r;
}

/**
 * Spearman rank correlation (Pearson of average ranks, so ties are handled exactly). ±Infinity
 * are ranked like any value; NaN throws InvalidArgumentError (see {@link ranks}).
 */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPair(x, y);
  return pearson(ranks(x), ranks(y));
}

/**
 * Fraction of entries whose predicted sign equals the actual sign, over entries with
 * |actual| > threshold (default 0). NaN when no entry qualifies.
 */
export function signAgreement(
  predicted: ArrayLike<number>,
  actual: ArrayLike<number>,
  threshold = 0,
): number {
  checkPair(predicted, actual);
  let agree = 0;
  let total = 0;
  for (let i = 0; i < actual.length; i++) {
    if (!(Math.abs(actual[i]!) > threshold)) continue;
    total++;
    if (Math.sign(predicted[i]!) === Math.sign(actual[i]!)) agree++;
  }
  return total ? agree / total : Number.NaN;
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

/** KL(p ‖ q) = Σ p (log p − log q) of one distribution given as log-probabilities. */
export function klDivergence(
  logP: ArrayLike<number>,
  logQ: ArrayLike<number>,
  offset = 0,
  V = logP.length,
): number {
  let s = 0;
  for (let i = 0; i < V; i++) {
    const lp = logP[offset + i]!;
    if (lp === Number.NEGATIVE_INFINITY) continue;
    s += Math.exp(lp) * (lp - logQ[offset + i]!);
  }
  return Math.max(0, s);
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

export interface KernelDrift {
  /** ‖K_t − K_0‖_F / ‖K_0‖_F */
  relativeChange: number;
  /** 1 − ⟨K_0, K_t⟩_F / (‖K_0‖_F ‖K_t‖_F) */
  distance: number;
}

/**
 * Kernel drift between the kernel at the checkpoint and a later one (same shape, same points).
 * Either one array each, or lists of blocks (e.g. `[train, observe]`) taken as one concatenated
 * kernel, block i of `kt` matching block i of `k0` in length. Edge cases: a zero K₀ has no
 * relative change (InvalidArgumentError naming `k0`); a zero K_t has distance 1.
 */
export function kernelDrift(
  k0: ArrayLike<number> | readonly ArrayLike<number>[],
  kt: ArrayLike<number> | readonly ArrayLike<number>[],
): KernelDrift {
  const blocks0 = asBlocks(k0);
  const blocksT = asBlocks(kt);
  const sizes = (b: readonly ArrayLike<number>[] | null) => b?.map((x) => x?.length).join('+');
  assertArgument(
    blocks0 !== null &&
      blocksT !== null &&
      blocks0.length === blocksT.length &&
      blocks0.some((b) => b.length > 0) &&
      blocks0.every((b, s) => b.length === blocksT[s]!.length),
    'kt',
    sizes(blocksT),
    `a kernel of the size of k0 (${sizes(blocks0)})`,
  );
  let n0 = 0;
  let nt = 0;
  let dot = 0;
  let dd = 0;
  for (let s = 0; s < blocks0!.length; s++) {
    const x = blocks0![s]!;
    const y = blocksT![s]!;
    for (let i = 0; i < x.length; i++) {
      const a = x[i]!;
      const b = y[i]!;
      n0 += a * a;
      nt += b * b;
      dot += a * b;
      dd += (b - a) * (b - a);
    }
  }
  assertArgument(n0 > 0, 'k0', 'a zero kernel', 'a kernel with ‖K_0‖ > 0');
  return {
    relativeChange: Math.sqrt(dd / n0),
    distance: nt > 0 ? Math.max(0, 1 - dot / Math.sqrt(n0 * nt)) : 1,
  };
}

/** One kernel array → [it]; a list of blocks → the list; anything else → null. */
function asBlocks(k: ArrayLike<number> | readonly ArrayLike<number>[]): readonly ArrayLike<number>[] | null {
  if (k == null) return null;
  if (Array.isArray(k) && k.length > 0 && typeof k[0] !== 'number') {
    return (k as unknown[]).every((b) => b != null && typeof (b as ArrayLike<number>).length === 'number')
      ? (k as ArrayLike<number>[])
      : null;
  }
  return [k as ArrayLike<number>];
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

export interface SlopeFit {
  /** d log y / d log x */
  slope: number;
  /** log y at log x = 0 */
  intercept: number;
  /** Coefficient of determination of the fit in log–log space. */
  r2: number;
  /** Points used (positive finite x and y). */
  count: number;
}

/** Least-squares line through (log x, log y), over the pairs where both are positive and finite. */
export function logLogSlope(x: ArrayLike<number>, y: ArrayLike<number>): SlopeFit {
  checkPair(x, y);
  const lx: number[] = [];
  const ly: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (x[i]! > 0 && y[i]! > 0 && Number.isFinite(x[i]!) && Number.isFinite(y[i]!)) {
      lx.push(Math.log(x[i]!));
      ly.push(Math.log(y[i]!));
    }
  }
  const n = lx.length;
  if (n < 2) return { slope: Number.NaN, intercept: Number.NaN, r2: Number.NaN, count: n };
  const mx = lx.reduce((s, v) => s + v, 0) / n;
  const my = ly.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (lx[i]! - mx) * (ly[i]! - my);
    sxx += (lx[i]! - mx) ** 2;
    syy += (ly[i]! - my) ** 2;
  }
  if (sxx === 0) return { slope: Number.NaN, intercept: Number.NaN, r2: Number.NaN, count: n };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, r2: syy === 0 ? 1 : (sxy * sxy) / (sxx * syy), count: n };
}
