/** Predicted vs actual scatter (e.g. Δ log π): identity line and Pearson r per predictor. */
import type { TopLevelSpec } from 'vega-lite';
import { assertArgument } from '../../errors.js';
import { type Numeric, pearson } from '../../util/index.js';
import { formatNumber } from '../format.js';
import { methodColours } from '../palette.js';
import { baseConfig, type Figure, type FigureOptions, makeFigure } from '../render.js';
import {
  checkNumeric,
  checkPositiveInteger,
  checkUniqueNames,
  joinSentences,
  round6,
  sampleIndices,
  slug,
} from './common.js';

/** One predictor's predictions against the actual values (same length, same order). */
export interface ScatterSeries {
  /** Predictor name, e.g. 'POP-MU' (legend entry; fixed colours for actual/one-step/POP-MU/POP-ODE/refreshed). */
  name: string;
  /** Predicted values, one per item. */
  predicted: Numeric;
  /** Actual values, one per item (same length as `predicted`). */
  actual: Numeric;
}

/** Options for {@link predictedVsActualFigure}. */
export interface PredictedVsActualOptions extends FigureOptions {
  /** One series per predictor (at least one). */
  series: ScatterSeries[];
  /** The quantity plotted, for axis titles and caption. Default 'Δ log π'. */
  quantity?: string;
  /** Unit of the quantity. Default 'nats' (natural-log units). */
  unit?: string;
  /** What one point is, for the caption. Default 'one (tracked point, label) pair'. */
  itemDescription?: string;
  /** Most points drawn per series (a seeded random sample beyond that; r always uses all). Default 4000. */
  maxPoints?: number;
  /** Seed of the display sample. Default 0. */
  seed?: number;
}

/**
 * Scatter of predicted (y) against actual (x) values with the identity line y = x (dashed) and
 * the Pearson r of each predictor in the plot corner, the caption (and the title for one series).
 * Both axes share one domain so distance from the diagonal reads as prediction error.
 * Non-finite pairs are left out (counted in `numbers.dropped_<name>`).
 *
 * numbers: `r_<name>`, `n_<name>` (pairs used) per series (`<name>` = slug of the series name),
 * plus `shown_<name>` when subsampled and `dropped_<name>` when non-finite pairs were left out.
 */
export async function predictedVsActualFigure(options: PredictedVsActualOptions): Promise<Figure> {
  const {
    series,
    quantity = 'Δ log π',
    unit = 'nats',
    itemDescription = 'one (tracked point, label) pair',
    maxPoints = 4000,
    seed = 0,
    width = 380,
    height = 380,
  } = options;
  assertArgument(Array.isArray(series) && series.length > 0, 'series', series, 'a non-empty array of series');
  checkUniqueNames(
    'series[].name',
    series.map((s) => s.name),
  );
  checkPositiveInteger('maxPoints', maxPoints);

  const names = series.map((s) => s.name);
  const numbers: Record<string, number | null> = {};
  const values: { method: string; actual: number; predicted: number }[] = [];
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  const rParts: string[] = [];
  const extraParts: string[] = [];
  const annotations: { text: string; row: number }[] = [];
  for (const [k, s] of series.entries()) {
    checkNumeric(`series[${k}].predicted`, s.predicted);
    checkNumeric(`series[${k}].actual`, s.actual, s.predicted.length);
    const key = slug(s.name);
    const p: number[] = [];
    const a: number[] = [];
    for (let i = 0; i < s.predicted.length; i++) {
      const pi = s.predicted[i]!;
      const ai = s.actual[i]!;
      if (Number.isFinite(pi) && Number.isFinite(ai)) {
        p.push(pi);
        a.push(ai);
      }
    }
    const r = pearson(p, a);
    numbers[`r_${key}`] = Number.isFinite(r) ? r : null;
    numbers[`n_${key}`] = p.length;
    rParts.push(`${s.name} {r_${key}} (n = {n_${key}})`);
    annotations.push({ text: `${s.name}: r = ${formatNumber(r)}`, row: k });
    const dropped = s.predicted.length - p.length;
    if (dropped > 0) {
      numbers[`dropped_${key}`] = dropped;
      extraParts.push(`{dropped_${key}} non-finite ${s.name} pairs are left out.`);
    }
    const shown = sampleIndices(p.length, maxPoints, seed + k);
    if (shown.length < p.length) {
      numbers[`shown_${key}`] = shown.length;
      extraParts.push(
        `${s.name}: a random sample of {shown_${key}} of the {n_${key}} pairs is drawn (r uses all).`,
      );
    }
    for (const i of shown) {
      values.push({ method: s.name, actual: round6(a[i]!), predicted: round6(p[i]!) });
      lo = Math.min(lo, a[i]!, p[i]!);
      hi = Math.max(hi, a[i]!, p[i]!);
    }
  }
  if (!(lo < hi)) {
    lo = Number.isFinite(lo) ? lo - 1 : -1;
    hi = Number.isFinite(hi) ? hi + 1 : 1;
  }
  const pad = 0.04 * (hi - lo);
  const domain = [round6(lo - pad), round6(hi + pad)];
  const axisTitle = (which: string) => `${which} ${quantity}${unit ? ` (${unit})` : ''}`;
  const colours = methodColours(names);
  const shapes = ['circle', 'square', 'triangle-up', 'diamond', 'cross', 'triangle-down'];
  const single = series.length === 1;
  // Colour and shape both encode the predictor; identical legend settings merge them into one legend.
  const legend = single ? null : { orient: 'bottom-right' as const, direction: 'vertical' as const };

  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    layer: [
      {
        data: { values: [{ v: domain[0] }, { v: domain[1] }] },
        mark: { type: 'line', strokeDash: [5, 4], color: '#888888', strokeWidth: 1.2, clip: true },
        encoding: {
          x: { field: 'v', type: 'quantitative', scale: { domain, nice: false, zero: false } },
          y: { field: 'v', type: 'quantitative', scale: { domain, nice: false, zero: false } },
        },
      },
      {
        data: { values },
        mark: { type: 'point', filled: true, size: 22, opacity: 0.65, clip: true },
        encoding: {
          x: { field: 'actual', type: 'quantitative', title: axisTitle('actual') },
          y: { field: 'predicted', type: 'quantitative', title: axisTitle('predicted') },
          color: {
            field: 'method',
            type: 'nominal',
            title: 'predictor',
            scale: { domain: names, range: colours },
            legend,
          },
          shape: {
            field: 'method',
            type: 'nominal',
            title: 'predictor',
            scale: { domain: names, range: names.map((_, i) => shapes[i % shapes.length]!) },
            legend,
          },
        },
      },
      ...annotations.map((a) => ({
        data: { values: [{}] },
        mark: {
          type: 'text' as const,
          text: a.text,
          x: 8,
          y: 8 + 16 * a.row,
          align: 'left' as const,
          baseline: 'top' as const,
          fontSize: 12,
          color: '#222222',
        },
      })),
    ],
    config: baseConfig(),
  };
  const titleTemplate =
    options.title ??
    (single
      ? `Predicted vs actual ${quantity} (r = {r_${slug(names[0]!)}})`
      : `Predicted vs actual ${quantity}`);
  const captionTemplate = joinSentences([
    `Each point is ${itemDescription}: the actual ${quantity} (x) against the predicted one (y).`,
    'The dashed line is y = x, perfect prediction; points above it are over-predicted, points below under-predicted.',
    `Pearson r: ${rParts.join(', ')}.`,
    ...extraParts,
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'predicted-vs-actual',
    titleTemplate,
    captionTemplate,
    numbers,
    spec,
  });
}
