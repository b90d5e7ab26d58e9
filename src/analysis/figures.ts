/**
 * Figures of the kernel-analysis report: quantities against the training step of the checkpoint
 * (spectrum, alignment, accuracy over training), drawn with the report module's conventions
 * (Vega-Lite rendered server-side, Okabe–Ito colours, numbers in the caption keyed for results.json).
 */

import { assertArgument } from '../errors.js';
import {
  baseConfig,
  categoryColours,
  type Figure,
  type FigureOptions,
  makeFigure,
  methodDashes,
} from '../report/index.js';

/** One line: a value per checkpoint. */
export interface OverTrainingSeries {
  name: string;
  /** One value per step of the figure (NaN/Infinity/null are left out). */
  values: (number | null)[];
}

/** Options of {@link overTrainingFigure}. */
export interface OverTrainingOptions extends FigureOptions {
  id: string;
  title: string;
  /** Training steps of the checkpoints (x). */
  steps: number[];
  series: OverTrainingSeries[];
  /** y-axis title with unit. */
  yTitle: string;
  /** What the figure shows (first sentence of the caption). */
  description: string;
  /** Logarithmic y axis (non-positive values left out). Default false. */
  logY?: boolean;
  /** Logarithmic x axis over step + 1 (checkpoints are often geometric). Default false. */
  logX?: boolean;
  /** x-axis title. Default 'training step of checkpoint'. */
  xTitle?: string;
}

/**
 * A line per series against the checkpoint's training step, a dot at every checkpoint.
 * numbers: `lastStep` and `last_<k>` (series k's value at the last step).
 */
export async function overTrainingFigure(options: OverTrainingOptions): Promise<Figure> {
  const {
    steps,
    series,
    logY = false,
    logX = false,
    xTitle = 'training step of checkpoint',
    width = 460,
    height = 260,
  } = options;
  assertArgument(Array.isArray(steps) && steps.length > 0, 'steps', steps, 'a non-empty array of steps');
  assertArgument(Array.isArray(series) && series.length > 0, 'series', series, 'a non-empty array');
  const names = series.map((s) => s.name);
  const rows: { series: string; step: number; value: number }[] = [];
  const numbers: Record<string, number | null> = { lastStep: steps[steps.length - 1]! };
  const lasts: string[] = [];
  series.forEach((s, k) => {
    assertArgument(
      s.values.length === steps.length,
      `series[${k}].values`,
      s.values,
      `${steps.length} values`,
    );
    s.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v) || (logY && v <= 0)) return;
      rows.push({ series: s.name, step: logX ? steps[i]! + 1 : steps[i]!, value: v });
    });
    const last = s.values[steps.length - 1];
    numbers[`last_${k}`] = last !== null && last !== undefined && Number.isFinite(last) ? last : null;
    lasts.push(`${s.name} {last_${k}}`);
  });
  const spec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 2, point: { size: 30, filled: true }, clip: true },
    encoding: {
      x: {
        field: 'step',
        type: 'quantitative',
        title: logX ? `${xTitle} + 1 (log scale)` : xTitle,
        scale: logX ? { type: 'log' } : {},
      },
      y: {
        field: 'value',
        type: 'quantitative',
        title: options.yTitle,
        scale: logY ? { type: 'log' } : { zero: false },
      },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        sort: names,
        scale: { domain: names, range: categoryColours(names.length) },
        legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 },
      },
      strokeDash: {
        field: 'series',
        type: 'nominal',
        title: null,
        sort: names,
        scale: { domain: names, range: methodDashes(names) },
        legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 },
      },
    },
    config: baseConfig(),
  } as const;
  const caption = [
    `${options.description}${logY ? ' (log scale)' : ''}, against the ${xTitle}${logX ? ' + 1 (log scale)' : ''}.`,
    `At the last one ({lastStep}): ${lasts.join(', ')}.`,
    options.note,
  ]
    .filter(Boolean)
    .join(' ');
  return makeFigure({
    id: options.id,
    titleTemplate: options.title,
    captionTemplate: caption,
    numbers,
    spec: spec as unknown as Parameters<typeof makeFigure>[0]['spec'],
  });
}
