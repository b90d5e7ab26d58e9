/**
 * Small float64 statistics the figures quote in their captions: Pearson correlation and the
 * least-squares slope on log–log axes.
 */
import { InvalidArgumentError } from '../errors.js';

/** Any array-like of numbers (Float32Array, Float64Array, number[]). */
export type Numeric = ArrayLike<number>;

/**
 * Pearson correlation r of two equal-length samples, in float64:
 * r = Σ (a−ā)(b−b̄) / sqrt(Σ (a−ā)² Σ (b−b̄)²). NaN when either sample is constant or n < 2.
 */
export function pearson(a: Numeric, b: Numeric): number {
  if (a.length !== b.length)
    throw new InvalidArgumentError('b', b, `an array of the same length as a (${a.length})`);
  const n = a.length;
  if (n < 2) return Number.NaN;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return Number.NaN;
  return sab / Math.sqrt(saa * sbb);
}

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
  const lx: number[] = [];
  const ly: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    if (Number.isFinite(xi) && Number.isFinite(yi) && xi > 0 && yi > 0) {
      lx.push(Math.log10(xi));
      ly.push(Math.log10(yi));
    }
  }
  const n = lx.length;
  if (n < 2)
    throw new InvalidArgumentError(
      'x, y',
      `${n} usable point(s)`,
      'at least two points with x > 0 and y > 0',
    );
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += lx[i]!;
    my += ly[i]!;
  }
  mx /= n;
  my /= n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = lx[i]! - mx;
    const dy = ly[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) throw new InvalidArgumentError('x', x, 'at least two distinct positive values');
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) {
    const r = ly[i]! - (intercept + slope * lx[i]!);
    sse += r * r;
  }
  const r2 = syy === 0 ? 1 : 1 - sse / syy;
  return { slope, intercept, r2, n, dropped: x.length - n };
}
