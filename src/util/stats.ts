/**
 * The project's one statistics module (float64, plain loops, no tfjs): correlations (Pearson,
 * Spearman), sign agreement, KL divergence, kernel drift and the least-squares fit on log–log
 * axes. Every stage may import it (it sits at the bottom with src/errors.ts); the trajectory
 * metrics built on it are in src/compare/metrics.ts.
 */
import { assertArgument, InvalidArgumentError } from '../errors.js';

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

/** Any array-like of numbers (Float32Array, Float64Array, number[]). */
export type Numeric = ArrayLike<number>;

/** A straight line fitted on log10–log10 axes: log10 y = intercept + slope · log10 x. */
export interface LogLogFit {
  /** Fitted exponent: y ∝ x^slope. */
  slope: number;
  /** Fitted log10 y at log10 x = 0. */
  intercept: number;
  /** Coefficient of determination of the fit in log space (1 for points on a line). */
  r2: number;
  /** Number of points used (those with x > 0 and y > 0, both finite). */
  n: number;
  /** Number of points dropped because x ≤ 0, y ≤ 0 or not finite. */
  dropped: number;
}

/**
 * Ordinary least squares of log10 y on log10 x over the points with x > 0 and y > 0 (others are
 * dropped and counted). Throws when fewer than two usable points, or all x equal, remain.
 */
export function fitLogLog(x: Numeric, y: Numeric): LogLogFit {
  if (x.length !== y.length)
    throw new InvalidArgumentError('y', y, `an array of the same length as x (${x.length})`);
  // One least-squares fit for the whole project ({@link logLogSlope}), in natural logs; the slope and R²
  // do not depend on the base, the intercept converts by 1/ln 10.
  const fit = logLogSlope(x, y);
  if (fit.count < 2)
    throw new InvalidArgumentError(
      'x, y',
      `${fit.count} usable point(s)`,
      'at least two points with x > 0 and y > 0',
    );
  if (!Number.isFinite(fit.slope))
    throw new InvalidArgumentError('x', x, 'at least two distinct positive values');
  return {
    slope: fit.slope,
    intercept: fit.intercept / Math.LN10,
    r2: fit.r2,
    n: fit.count,
    dropped: x.length - fit.count,
  };
}
