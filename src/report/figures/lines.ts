/** Line charts over steps: prediction error over the finetune, kernel drift over checkpoints. */
import type { TopLevelSpec } from 'vega-lite';
import { assertArgument } from '../../errors.js';
import type { Numeric } from '../../util/index.js';
import { methodColours, methodDashes } from '../palette.js';
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

/** One predictor's error at each step. */
export interface ErrorSeries {
  /** Predictor name, e.g. 'POP-MU' (fixed colour and dash for the known methods). */
  name: string;
  /** Error at each step (same length as its steps). */
  values: Numeric;
  /** Steps of `values`. Default: the figure's `steps`. */
  steps?: Numeric;
}

/** Options for {@link errorOverStepsFigure}. */
export interface ErrorOverStepsOptions extends FigureOptions {
  /** Shared step axis (length T) for series without their own `steps`. */
  steps: Numeric;
  /** One series per predictor (at least one). */
  series: ErrorSeries[];
  /** y-axis title, with unit. Default 'mean |predicted − actual| log π (nats)'. */
  yTitle?: string;
  /** What the error measures, for the caption. Default 'the mean absolute error of log π over the tracked points and labels'. */
  errorDescription?: string;
  /** x-axis title. Default 'finetune step (SGD updates)'. */
  stepTitle?: string;
  /**
   * What is compared, opening the caption. Default 'Error of each predictor against the real network
   * over the finetune'.
   */
  subject?: string;
  /** What the x axis is, in the caption ('at each <x> (x)', 'At the last <x> (…)'). Default 'step'. */
  xName?: string;
  /** How to read the lines. Default: lower is better, a climbing line drifts away as training moves the network. */
  reading?: string;
  /** Logarithmic y axis (non-positive values are left out). Default false. */
  logY?: boolean;
  /** Most points drawn per line (evenly spaced). Default 400. */
  maxStepsPerLine?: number;
}

/**
 * Each predictor's error against the actual network as the finetune proceeds (x = step,
 * y = error, colour and dash = predictor, a dot at every drawn step when there are few).
 *
 * numbers: `lastStep`, and `final_<name>` = each series' error at its last step.
 */
export async function errorOverStepsFigure(options: ErrorOverStepsOptions): Promise<Figure> {
  const {
    steps,
    series,
    yTitle = 'mean |predicted − actual| log π (nats)',
    errorDescription = 'the mean absolute error of log π over the tracked points and labels',
    stepTitle = 'finetune step (SGD updates)',
    subject = 'Error of each predictor against the real network over the finetune',
    xName = 'step',
    reading = 'Lower is better; a line that climbs means the prediction drifts away as training moves the network.',
    logY = false,
    maxStepsPerLine = 400,
    width = 460,
    height = 260,
  } = options;
  checkNumeric('steps', steps);
  checkPositiveInteger('maxStepsPerLine', maxStepsPerLine, MIN_EVEN_INDICES);
  assertArgument(Array.isArray(series) && series.length > 0, 'series', series, 'a non-empty array of series');
  checkUniqueNames(
    'series[].name',
    series.map((s) => s.name),
  );
  const names = series.map((s) => s.name);
  const rows: { method: string; step: number; value: number }[] = [];
  const numbers: Record<string, number | null> = {};
  const finals: string[] = [];
  let lastStep = Number.NEGATIVE_INFINITY;
  let few = true;
  for (const [k, s] of series.entries()) {
    const st = s.steps ?? steps;
    checkNumeric(`series[${k}].steps`, st);
    checkNumeric(`series[${k}].values`, s.values, st.length);
    assertArgument(st.length > 0, `series[${k}].values`, s.values, 'at least one value');
    const shown = evenIndices(st.length, maxStepsPerLine);
    if (shown.length > 40) few = false;
    for (const t of shown) {
      const v = s.values[t]!;
      if (!Number.isFinite(v) || (logY && v <= 0)) continue;
      rows.push({ method: s.name, step: st[t]!, value: round6(v) });
    }
    const key = `final_${slug(s.name)}`;
    const last = s.values[st.length - 1]!;
    numbers[key] = Number.isFinite(last) ? last : null;
    finals.push(`${s.name} {${key}}`);
    lastStep = Math.max(lastStep, st[st.length - 1]!);
  }
  numbers.lastStep = lastStep;
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 2, point: few ? { size: 24, filled: true } : false, clip: true },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: stepTitle },
      y: {
        field: 'value',
        type: 'quantitative',
        title: yTitle,
        scale: logY ? { type: 'log' } : { zero: true },
      },
      color: {
        field: 'method',
        type: 'nominal',
        title: 'predictor',
        scale: { domain: names, range: methodColours(names) },
        legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 },
      },
      strokeDash: {
        field: 'method',
        type: 'nominal',
        title: 'predictor',
        scale: { domain: names, range: methodDashes(names) },
        legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400 },
      },
    },
    config: baseConfig(),
  };
  const captionTemplate = joinSentences([
    `${subject}: ${errorDescription} (y${logY ? ', log scale' : ''}) at each ${xName} (x).`,
    reading,
    `At the last ${xName} ({lastStep}): ${finals.join(', ')}.`,
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'error-over-steps',
    titleTemplate: options.title ?? 'Prediction error over finetune steps',
    captionTemplate,
    numbers,
    spec,
  });
}

/** Kernel drift of one checkpoint relative to the reference kernel (docs/theory.md#kernel-drift). */
export interface DriftPoint {
  /** Training step of the checkpoint. */
  step: number;
  /** Relative change ‖K_t − K_0‖_F / ‖K_0‖_F. */
  relativeChange: number;
  /** Kernel distance 1 − ⟨K_0, K_t⟩_F / (‖K_0‖_F ‖K_t‖_F). */
  kernelDistance: number;
}

/** Options for {@link kernelDriftFigure}. */
export interface KernelDriftOptions extends FigureOptions {
  /** One entry per checkpoint, in any order (sorted by step for drawing). */
  checkpoints: DriftPoint[];
  /** Name of the reference checkpoint K_0, for the caption. Default 'the first checkpoint'. */
  referenceName?: string;
  /** x-axis title. Default 'training step of checkpoint'. */
  stepTitle?: string;
}

/**
 * How far the eNTK moves during training: relative Frobenius change and kernel distance of each
 * checkpoint's kernel from the reference kernel, against the checkpoint's training step. Both are
 * dimensionless; 0 means the kernel has not moved (lazy training).
 *
 * numbers: `checkpoints`, `lastStep`, `finalRelativeChange`, `finalKernelDistance` (at the last step).
 */
export async function kernelDriftFigure(options: KernelDriftOptions): Promise<Figure> {
  const {
    checkpoints,
    referenceName = 'the first checkpoint',
    stepTitle = 'training step of checkpoint',
    width = 460,
    height = 260,
  } = options;
  assertArgument(
    Array.isArray(checkpoints) && checkpoints.length > 0,
    'checkpoints',
    checkpoints,
    'a non-empty array of { step, relativeChange, kernelDistance }',
  );
  for (const [i, c] of checkpoints.entries()) {
    assertArgument(Number.isFinite(c?.step), `checkpoints[${i}].step`, c?.step, 'a finite number');
  }
  const sorted = [...checkpoints].sort((a, b) => a.step - b.step);
  const metrics = ['relative change ‖K_t − K_0‖_F / ‖K_0‖_F', 'kernel distance 1 − cos(K_0, K_t)'];
  const rows: { metric: string; step: number; value: number }[] = [];
  for (const c of sorted) {
    if (Number.isFinite(c.relativeChange))
      rows.push({ metric: metrics[0]!, step: c.step, value: round6(c.relativeChange) });
    if (Number.isFinite(c.kernelDistance))
      rows.push({ metric: metrics[1]!, step: c.step, value: round6(c.kernelDistance) });
  }
  const last = sorted[sorted.length - 1]!;
  const numbers: Record<string, number | null> = {
    checkpoints: sorted.length,
    lastStep: last.step,
    finalRelativeChange: Number.isFinite(last.relativeChange) ? last.relativeChange : null,
    finalKernelDistance: Number.isFinite(last.kernelDistance) ? last.kernelDistance : null,
  };
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    width,
    height,
    data: { values: rows },
    mark: { type: 'line', strokeWidth: 2, point: { size: 40, filled: true } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: stepTitle },
      y: {
        field: 'value',
        type: 'quantitative',
        title: 'drift from K_0 (dimensionless)',
        scale: { zero: true },
      },
      color: {
        field: 'metric',
        type: 'nominal',
        title: 'measure',
        scale: { domain: metrics, range: ['#0072B2', '#D55E00'] },
        legend: { orient: 'bottom', direction: 'vertical' },
      },
      shape: {
        field: 'metric',
        type: 'nominal',
        title: 'measure',
        scale: { domain: metrics, range: ['circle', 'square'] },
        legend: { orient: 'bottom', direction: 'vertical' },
      },
    },
    config: baseConfig(),
  };
  const captionTemplate = joinSentences([
    `How far the empirical NTK moves during training, measured at {checkpoints} checkpoints against ${referenceName} (K_0).`,
    'Blue circles: relative Frobenius change; orange squares: kernel distance (one minus the cosine between the kernels).',
    'Zero means a frozen kernel (lazy training); the further up, the more the network learns features and the less a kernel frozen at K_0 can be trusted.',
    'At the last checkpoint (step {lastStep}) the relative change is {finalRelativeChange} and the kernel distance {finalKernelDistance}.',
    options.note,
  ]);
  return makeFigure({
    id: options.id ?? 'kernel-drift',
    titleTemplate: options.title ?? 'Kernel drift over training checkpoints',
    captionTemplate,
    numbers,
    spec,
  });
}
