/** Per-label probability trajectories of chosen points under the actual network and the predictors. */
import type { TopLevelSpec } from 'vega-lite';
import { assertArgument } from '../../errors.js';
import type { Numeric } from '../../util/index.js';
import { categoryColours, methodDashes } from '../palette.js';
import { baseConfig, type Figure, type FigureOptions, makeFigure } from '../render.js';
import {
  checkNumeric,
  checkPositiveInteger,
  checkUniqueNames,
  evenIndices,
  joinSentences,
  MIN_EVEN_INDICES,
  round6,
  slug,
} from './common.js';

/** One method's trajectory for one point. */
export interface TrajectorySeries {
  /** Method name: 'actual', 'POP-MU', 'POP-ODE', 'refreshed', ... (line dash per method). */
  method: string;
  /** Probabilities π(label | x) over steps, row-major [T, V]: entry t·V + i is label i at step t. */
  probabilities: Numeric;
  /** Step of each row (length T). Default: the figure's `steps`. */
  steps?: Numeric;
}

/** One chosen point: its panel in the figure. */
export interface TrajectoryPoint {
  /** Panel title, e.g. 'test #12 (label 3)'. Unique within the figure. */
  name: string;
  /** The point's true label (always among the labels drawn). */
  trueLabel?: number;
  /** Labels to draw. Default: the `labelsPerPoint` labels reaching the highest probability under 'actual' (or the first series). */
  labels?: number[];
  /** One series per method (at least one). */
  series: TrajectorySeries[];
}

/** Options for {@link trajectoriesFigure}. */
export interface TrajectoriesOptions extends FigureOptions {
  /** Step of each trajectory row (length T), shared by series without their own `steps`. */
  steps: Numeric;
  /** Number of labels V (columns of each probabilities array). */
  numLabels: number;
  /** Label names (length V). Default: 'label 0', 'label 1', ... */
  labelNames?: string[];
  /** The chosen points, one panel each. */
  points: TrajectoryPoint[];
  /** Labels drawn per point when `labels` is not given. Default 3. */
  labelsPerPoint?: number;
  /** Plot π (default 'probability') or log π in nats ('logProbability'). */
  value?: 'probability' | 'logProbability';
  /** Panels per row. Default min(number of points, 3). */
  columns?: number;
  /** Most steps drawn per line (evenly spaced, first and last kept). Default 250. */
  maxStepsPerLine?: number;
  /** x-axis title. Default 'finetune step (SGD updates)'. */
  stepTitle?: string;
}

/** log π is drawn no lower than this (nats), so a probability of exactly 0 stays on the plot. */
export const LOG_PROBABILITY_FLOOR = -30;

/**
 * Small multiples, one panel per chosen point: π(label | x) (or log π) against the finetune step,
 * colour = label, line dash = method (actual solid; POP-MU, POP-ODE, refreshed dashed in distinct
 * patterns). Where a dashed line follows the solid line of its colour, the predictor is right.
 *
 * numbers: `points`, `labelsShown`; with an 'actual' series, `finalGap_<method>` = the largest
 * |value_method − value_actual| at the last step over all panels and drawn labels.
 */
export async function trajectoriesFigure(options: TrajectoriesOptions): Promise<Figure> {
  const {
    steps,
    numLabels,
    points,
    labelsPerPoint = 3,
    value = 'probability',
    maxStepsPerLine = 250,
    stepTitle = 'finetune step (SGD updates)',
    width = 260,
    height = 200,
  } = options;
  checkPositiveInteger('numLabels', numLabels);
  checkNumeric('steps', steps);
  assertArgument(Array.isArray(points) && points.length > 0, 'points', points, 'a non-empty array of points');
  checkUniqueNames(
    'points[].name',
    points.map((p) => p.name),
  );
  checkPositiveInteger('labelsPerPoint', labelsPerPoint);
  checkPositiveInteger('maxStepsPerLine', maxStepsPerLine, MIN_EVEN_INDICES);
  assertArgument(
    value === 'probability' || value === 'logProbability',
    'value',
    value,
    "'probability' or 'logProbability'",
  );
  const labelNames = options.labelNames ?? Array.from({ length: numLabels }, (_, i) => `label ${i}`);
  checkNumeric('labelNames', labelNames, numLabels);
  const columns = options.columns ?? Math.min(points.length, 3);
  checkPositiveInteger('columns', columns);

  const methods: string[] = [];
  const usedLabels = new Set<number>();
  const rows: { point: string; label: string; method: string; step: number; value: number }[] = [];
  const finalGap = new Map<string, number>();
  const transform = (p: number) =>
    value === 'probability' ? p : Math.max(LOG_PROBABILITY_FLOOR, Math.log(p));

  for (const [pi, point] of points.entries()) {
    assertArgument(
      Array.isArray(point.series) && point.series.length > 0,
      `points[${pi}].series`,
      point.series,
      'a non-empty array',
    );
    checkUniqueNames(
      `points[${pi}].series[].method`,
      point.series.map((s) => s.method),
    );
    const stepsOf = point.series.map((s, si) => {
      const st = s.steps ?? steps;
      checkNumeric(`points[${pi}].series[${si}].steps`, st);
      checkNumeric(`points[${pi}].series[${si}].probabilities`, s.probabilities, st.length * numLabels);
      if (!methods.includes(s.method)) methods.push(s.method);
      return st;
    });
    const actual = point.series.find((s) => s.method.toLowerCase() === 'actual');
    const reference = actual ?? point.series[0]!;
    let labels = point.labels;
    if (labels == null) {
      const peak = new Float64Array(numLabels).fill(Number.NEGATIVE_INFINITY);
      const T = reference.probabilities.length / numLabels;
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < numLabels; i++)
          peak[i] = Math.max(peak[i]!, reference.probabilities[t * numLabels + i]!);
      }
      const ranked = Array.from({ length: numLabels }, (_, i) => i).sort(
        (a, b) => peak[b]! - peak[a]! || a - b,
      );
      labels = ranked.slice(0, labelsPerPoint);
      if (point.trueLabel != null && !labels.includes(point.trueLabel))
        labels = [point.trueLabel, ...labels.slice(0, -1)];
    }
    for (const label of labels) {
      assertArgument(
        Number.isInteger(label) && label >= 0 && label < numLabels,
        `points[${pi}].labels`,
        labels,
        `labels in [0, ${numLabels})`,
      );
      usedLabels.add(label);
    }
    for (const [si, s] of point.series.entries()) {
      const st = stepsOf[si]!;
      const T = st.length;
      for (const t of evenIndices(T, maxStepsPerLine)) {
        for (const label of labels) {
          const v = transform(s.probabilities[t * numLabels + label]!);
          if (!Number.isFinite(v)) continue;
          rows.push({
            point: point.name,
            label: labelNames[label]!,
            method: s.method,
            step: st[t]!,
            value: round6(v),
          });
        }
      }
      if (actual && s !== actual && T > 0) {
        const Ta = actual.probabilities.length / numLabels;
        let gap = finalGap.get(s.method) ?? 0;
        for (const label of labels) {
          const d = Math.abs(
            transform(s.probabilities[(T - 1) * numLabels + label]!) -
              transform(actual.probabilities[(Ta - 1) * numLabels + label]!),
          );
          gap = Number.isFinite(d) ? Math.max(gap, d) : Number.NaN;
        }
        finalGap.set(s.method, gap);
      }
    }
  }

  const labelDomain = [...usedLabels].sort((a, b) => a - b).map((i) => labelNames[i]!);
  const yTitle = value === 'probability' ? 'π(label | x) (probability)' : 'log π(label | x) (nats)';
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    data: { values: rows },
    facet: {
      field: 'point',
      type: 'nominal',
      title: null,
      sort: points.map((p) => p.name),
      header: { labelFontSize: 12, labelLimit: width + 40 },
    },
    columns,
    spec: {
      width,
      height,
      mark: { type: 'line', strokeWidth: 1.8, clip: true },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: stepTitle },
        y: {
          field: 'value',
          type: 'quantitative',
          title: yTitle,
          scale: value === 'probability' ? { domain: [0, 1], nice: false } : { zero: false },
        },
        color: {
          field: 'label',
          type: 'nominal',
          title: 'label',
          scale: { domain: labelDomain, range: categoryColours(labelDomain.length) },
        },
        strokeDash: {
          field: 'method',
          type: 'nominal',
          title: 'method',
          scale: { domain: methods, range: methodDashes(methods) },
          legend: { symbolStrokeWidth: 2, symbolSize: 400, symbolType: 'stroke' },
        },
      },
    },
    config: baseConfig(),
  };

  const numbers: Record<string, number | null> = { points: points.length, labelsShown: labelDomain.length };
  const gapParts: string[] = [];
  for (const [method, gap] of finalGap) {
    const key = `finalGap_${slug(method)}`;
    numbers[key] = Number.isFinite(gap) ? gap : null;
    gapParts.push(`${method} {${key}}`);
  }
  const what =
    value === 'probability' ? 'probability π(label | x)' : 'log-probability log π(label | x) in nats';
  const captionTemplate = joinSentences([
    `Each panel follows one of {points} chosen points through the finetune: the ${what} of its most likely labels (colour; {labelsShown} labels in all) against the step.`,
    `Line style is the method: ${methods.map((m, i) => `${m} ${i === 0 && m.toLowerCase() === 'actual' ? '(solid)' : ''}`.trim()).join(', ')}.`,
    'Where a dashed line lies on the solid line of its colour, that predictor matches the real network.',
    gapParts.length > 0
      ? `Largest gap to the actual ${value === 'probability' ? 'probability' : 'log-probability'} at the last step, over the drawn labels: ${gapParts.join(', ')}.`
      : '',
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'trajectories',
    titleTemplate: options.title ?? 'Per-label trajectories: actual network vs predictions',
    captionTemplate,
    numbers,
    spec,
  });
}
