/** Log–log plots with a fitted power law: laziness gap vs width, discretisation error vs step size. */
import type { TopLevelSpec } from 'vega-lite';
import { fitLogLog, type Numeric } from '../../util/index.js';
import { formatNumber } from '../format.js';
import { baseConfig, type Figure, type FigureOptions, makeFigure } from '../render.js';
import { checkNumeric, joinSentences, round6 } from './common.js';

/** A theoretical slope drawn for comparison (dashed grey line through the data's centre). */
export interface ReferenceSlope {
  /** The exponent, e.g. 1 for O(η), -0.5 for O(width^-1/2). */
  slope: number;
  /** Legend text, e.g. 'theory: slope 1 (O(η))'. */
  label: string;
}

/** Options for {@link logLogSlopeFigure}. */
export interface LogLogSlopeOptions extends FigureOptions {
  /** x values (> 0; others are left out of plot and fit). */
  x: Numeric;
  /** y values (> 0; others are left out of plot and fit), same length as x. */
  y: Numeric;
  /** x-axis title with unit. */
  xTitle: string;
  /** y-axis title with unit. */
  yTitle: string;
  /** What is plotted, for the caption, e.g. 'the gap between the network and POP-MU'. */
  description: string;
  /** Theoretical slope to draw for comparison. */
  reference?: ReferenceSlope;
  /** Legend name of the measured points. Default 'measured'. */
  seriesName?: string;
}

/**
 * Points on log–log axes with the least-squares line log10 y = a + s·log10 x (solid) and an
 * optional theoretical slope (dashed, through the geometric centre of the data). The fitted slope
 * s is in the title, the caption and the legend.
 *
 * numbers: `slope`, `intercept` (log10 y at x = 1), `r2` (in log space), `n` (points used),
 * `referenceSlope` when given, `dropped` when points with x ≤ 0 or y ≤ 0 were left out.
 */
export async function logLogSlopeFigure(options: LogLogSlopeOptions): Promise<Figure> {
  const {
    x,
    y,
    xTitle,
    yTitle,
    description,
    reference,
    seriesName = 'measured',
    width = 400,
    height = 300,
  } = options;
  checkNumeric('x', x);
  checkNumeric('y', y, x.length);
  const fit = fitLogLog(x, y);
  const pts: { x: number; y: number; series: string }[] = [];
  let lx0 = Number.POSITIVE_INFINITY;
  let lx1 = Number.NEGATIVE_INFINITY;
  let sumLx = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    if (!(Number.isFinite(xi) && Number.isFinite(yi) && xi > 0 && yi > 0)) continue;
    pts.push({ x: round6(xi), y: round6(yi), series: seriesName });
    lx0 = Math.min(lx0, Math.log10(xi));
    lx1 = Math.max(lx1, Math.log10(xi));
    sumLx += Math.log10(xi);
  }
  const fitName = `least-squares fit: slope ${formatNumber(fit.slope)}`;
  const lines: { x: number; y: number; series: string }[] = [];
  for (const lx of [lx0, lx1])
    lines.push({ x: round6(10 ** lx), y: round6(10 ** (fit.intercept + fit.slope * lx)), series: fitName });
  const seriesDomain = [fitName];
  const colours = ['#0072B2'];
  const dashes = [[1, 0]];
  if (reference) {
    // the reference line goes through the data's centroid, which lies on the least-squares line
    const cx = sumLx / fit.n;
    const cy = fit.intercept + fit.slope * cx;
    for (const lx of [lx0, lx1])
      lines.push({
        x: round6(10 ** lx),
        y: round6(10 ** (cy + reference.slope * (lx - cx))),
        series: reference.label,
      });
    seriesDomain.push(reference.label);
    colours.push('#888888');
    dashes.push([6, 4]);
  }
  // Log domains hugging the data (a 15% margin in ratio) instead of whole decades.
  const lineYs = lines.map((l) => l.y).filter((v) => v > 0);
  const ys = [...pts.map((p) => p.y), ...lineYs];
  const xDomain = [round6(10 ** lx0 / 1.15), round6(10 ** lx1 * 1.15)];
  const yMin = ys.reduce((a, b) => Math.min(a, b), Number.POSITIVE_INFINITY);
  const yMax = ys.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
  const yDomain = [round6(yMin / 1.15), round6(yMax * 1.15)];
  const legend = {
    orient: 'bottom' as const,
    direction: 'vertical' as const,
    symbolType: 'stroke',
    symbolStrokeWidth: 2,
  };
  const colour = {
    field: 'series',
    type: 'nominal' as const,
    title: null,
    scale: { domain: seriesDomain, range: colours },
  };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    layer: [
      {
        data: { values: lines },
        mark: { type: 'line', strokeWidth: 1.8 },
        encoding: {
          x: {
            field: 'x',
            type: 'quantitative',
            scale: { type: 'log', domain: xDomain, nice: false },
            title: xTitle,
          },
          y: {
            field: 'y',
            type: 'quantitative',
            scale: { type: 'log', domain: yDomain, nice: false },
            title: yTitle,
          },
          color: { ...colour, legend },
          strokeDash: {
            field: 'series',
            type: 'nominal',
            title: null,
            scale: { domain: seriesDomain, range: dashes },
            legend,
          },
        },
      },
      {
        data: { values: pts },
        mark: { type: 'point', filled: true, size: 70, color: '#0072B2', opacity: 0.85 },
        encoding: {
          x: { field: 'x', type: 'quantitative' },
          y: { field: 'y', type: 'quantitative' },
          // A separate one-entry legend for the dots (the line legend shows strokes).
          shape: {
            field: 'series',
            type: 'nominal',
            title: null,
            scale: { domain: [seriesName], range: ['circle'] },
            legend: {
              orient: 'bottom',
              symbolFillColor: '#0072B2',
              symbolStrokeColor: '#0072B2',
              symbolOpacity: 0.85,
            },
          },
        },
      },
    ],
    config: baseConfig(),
  };
  const numbers: Record<string, number | null> = {
    slope: fit.slope,
    intercept: fit.intercept,
    r2: fit.r2,
    n: fit.n,
  };
  if (reference) numbers.referenceSlope = reference.slope;
  if (fit.dropped > 0) numbers.dropped = fit.dropped;
  const captionTemplate = joinSentences([
    `Dots: ${description} at {n} settings, on log–log axes. Solid line: least-squares fit log10 y = {intercept} + {slope} · log10 x (R² = {r2} in log space), i.e. y ∝ x^slope.`,
    reference
      ? 'Dashed grey: the slope {referenceSlope} that theory predicts, drawn through the centre of the points; parallel lines mean the predicted rate holds.'
      : '',
    fit.dropped > 0
      ? '{dropped} points with non-positive values cannot be shown on log axes and are left out.'
      : '',
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'log-log-slope',
    titleTemplate: options.title ?? `${description[0]!.toUpperCase()}${description.slice(1)} (slope {slope})`,
    captionTemplate,
    numbers,
    spec,
  });
}

/** Options for {@link lazinessVsWidthFigure}. */
export interface LazinessVsWidthOptions extends FigureOptions {
  /** Hidden-layer widths (units per layer). */
  widths: Numeric;
  /** Gap between the actual network and POP-MU at each width (same length). */
  gaps: Numeric;
  /** y-axis title. Default 'gap: network vs POP-MU, mean |Δ log π| (nats)'. */
  yTitle?: string;
  /** Theoretical slope; default −1/2 (Lee et al. 2019: O(width^−1/2) under NTK parameterisation). Null for none. */
  reference?: ReferenceSlope | null;
}

/**
 * Laziness vs width: the gap between the real network and POP-MU (kernel frozen) against the
 * hidden width, log–log, fitted slope; reference slope −1/2 (Lee et al. 2019).
 */
export function lazinessVsWidthFigure(options: LazinessVsWidthOptions): Promise<Figure> {
  const { widths, gaps, reference, yTitle, ...rest } = options;
  return logLogSlopeFigure({
    ...rest,
    id: options.id ?? 'laziness-vs-width',
    x: widths,
    y: gaps,
    xTitle: 'hidden width (units per layer)',
    yTitle: yTitle ?? 'gap: network vs POP-MU, mean |Δ log π| (nats)',
    description: 'the gap between the real network and POP-MU (frozen kernel) against the hidden width',
    title: options.title ?? 'Laziness vs width (slope {slope})',
    seriesName: 'measured gap',
    reference:
      reference === null
        ? undefined
        : (reference ?? { slope: -0.5, label: 'theory: slope −1/2 (Lee et al. 2019)' }),
  });
}

/** Options for {@link discretisationVsStepSizeFigure}. */
export interface DiscretisationVsStepSizeOptions extends FigureOptions {
  /** Step sizes |η| (> 0). */
  etas: Numeric;
  /** POP-MU vs POP-ODE error at each step size (same length). */
  errors: Numeric;
  /** y-axis title. Default 'POP-MU vs POP-ODE, max |Δ log π| (nats)'. */
  yTitle?: string;
  /** Theoretical slope; default 1 (the note's theorem: error O(η)). Null for none. */
  reference?: ReferenceSlope | null;
}

/**
 * Discretisation vs step size: POP-MU vs POP-ODE error against η on log–log axes with the fitted
 * slope; reference slope 1 (docs/theory.md#from-pop-mu-to-pop-ode: ‖Z(t_n) − Z_n‖ ≤ C|η|).
 */
export function discretisationVsStepSizeFigure(options: DiscretisationVsStepSizeOptions): Promise<Figure> {
  const { etas, errors, reference, yTitle, ...rest } = options;
  return logLogSlopeFigure({
    ...rest,
    id: options.id ?? 'discretisation-vs-step-size',
    x: etas,
    y: errors,
    xTitle: 'step size |η| (learning rate)',
    yTitle: yTitle ?? 'POP-MU vs POP-ODE, max |Δ log π| (nats)',
    description:
      'the gap between POP-MU (discrete steps) and POP-ODE (continuous time) against the step size',
    title: options.title ?? 'Discretisation error vs step size (slope {slope})',
    seriesName: 'measured error',
    reference:
      reference === null ? undefined : (reference ?? { slope: 1, label: 'theory: slope 1, error O(η)' }),
  });
}
