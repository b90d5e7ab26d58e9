/**
 * Small float64 statistics the figures quote in their captions: Pearson correlation and the
 * least-squares slope on log–log axes (both computed by src/compare, the one implementation).
 */
import { logLogSlope, pearson } from '../compare/metrics.js';
import { InvalidArgumentError } from '../errors.js';

export { pearson };

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
  // One least-squares fit for the whole project (src/compare), in natural logs; the slope and R²
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
