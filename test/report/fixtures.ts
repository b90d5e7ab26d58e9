/** Synthetic inputs for every figure kind (seeded), shared by the unit and browser tests. */

import { softmax } from '../../src/dynamics/index.js';
import {
  discretisationVsStepSizeFigure,
  errorOverStepsFigure,
  type Figure,
  kernelDriftFigure,
  kernelHeatmapFigure,
  lazinessVsWidthFigure,
  predictedVsActualFigure,
  type Report,
  ternaryFigure,
  trajectoriesFigure,
} from '../../src/report/index.js';
import { Rng } from '../../src/util/rng.js';

/** Logits moving linearly from z0 with velocity v (plus a method-specific bend), softmaxed: [T, V]. */
export function trajectory(
  rng: Rng,
  V: number,
  T: number,
  bend: number,
  z0: Float64Array,
  v: Float64Array,
): Float64Array {
  const z = new Float64Array(T * V);
  const w = Float64Array.from({ length: V }, () => rng.normal());
  for (let t = 0; t < T; t++) {
    const s = t / (T - 1);
    for (let i = 0; i < V; i++) z[t * V + i] = z0[i]! + s * v[i]! + bend * s * s * w[i]!;
  }
  return softmax(z, V);
}

export const METHODS = ['actual', 'POP-MU', 'POP-ODE', 'refreshed'] as const;

export function scatterData(n = 300) {
  const rng = new Rng(11);
  const actual = Float64Array.from({ length: n }, () => rng.normal() * 0.8);
  const noisy = (s: number) => Float64Array.from(actual, (a) => a * (1 - s) + rng.normal() * s);
  return [
    { name: 'one-step', predicted: noisy(0.5), actual },
    { name: 'POP-MU', predicted: noisy(0.2), actual },
    { name: 'POP-ODE', predicted: noisy(0.25), actual },
  ];
}

export function trajectoryData(V = 4, T = 60, points = 3) {
  const rng = new Rng(12);
  const steps = Float64Array.from({ length: T }, (_, t) => t * 5);
  return {
    steps,
    numLabels: V,
    labelNames: Array.from({ length: V }, (_, i) => `digit ${i}`),
    points: Array.from({ length: points }, (_, p) => {
      const z0 = Float64Array.from({ length: V }, () => rng.normal());
      const v = Float64Array.from({ length: V }, () => 2 * rng.normal());
      return {
        name: `test #${10 + p} (label ${p % V})`,
        trueLabel: p % V,
        series: METHODS.map((method, k) => ({
          method,
          probabilities: trajectory(rng.fork(method), V, T, k === 0 ? 0.8 : 0.3 * k, z0, v),
        })),
      };
    }),
  };
}

export function errorData(T = 60) {
  const steps = Float64Array.from({ length: T }, (_, t) => t * 5);
  return {
    steps,
    series: [
      { name: 'one-step', values: Float64Array.from(steps, (s) => 0.002 * s + 0.01) },
      { name: 'POP-MU', values: Float64Array.from(steps, (s) => 0.0008 * s) },
      { name: 'POP-ODE', values: Float64Array.from(steps, (s) => 0.0009 * s + 0.001) },
      { name: 'refreshed', values: Float64Array.from(steps, (s) => 0.0003 * s) },
    ],
  };
}

export function driftData() {
  return [0, 100, 200, 400, 800].map((step) => ({
    step,
    relativeChange: 0.3 * Math.sqrt(step / 800),
    kernelDistance: 0.05 * (step / 800),
  }));
}

/** A class-structured PSD kernel: Gram matrix of features clustered by class, classes shuffled. */
export function kernelData(perClass = 90, numClasses = 5, dim = 6) {
  const rng = new Rng(13);
  const n = perClass * numClasses;
  const classes = rng.shuffle(Array.from({ length: n }, (_, i) => i % numClasses));
  const centres = Array.from({ length: numClasses }, () =>
    Float64Array.from({ length: dim }, () => rng.normal() * 1.5),
  );
  const features = classes.map((c) => Float64Array.from(centres[c]!, (m) => m + rng.normal()));
  const kernel = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let k = 0; k < dim; k++) d += features[i]![k]! * features[j]![k]!;
      kernel[i * n + j] = d / dim + 1;
    }
  }
  return {
    kernel,
    size: n,
    classes: Int32Array.from(classes),
    classNames: Array.from({ length: numClasses }, (_, c) => `class ${c}`),
  };
}

export function slopeData() {
  const rng = new Rng(14);
  const widths = [64, 128, 256, 512, 1024, 2048, 4096];
  const gaps = widths.map((w) => 0.8 * w ** -0.5 * Math.exp(0.05 * rng.normal()));
  const etas = [0.4, 0.2, 0.1, 0.05, 0.025];
  const errors = etas.map((e) => 0.3 * e * Math.exp(0.03 * rng.normal()));
  return { widths, gaps, etas, errors };
}

export function ternaryData(points = 3, T = 40) {
  const rng = new Rng(15);
  const trajectories = [];
  for (let p = 0; p < points; p++) {
    const z0 = Float64Array.from({ length: 3 }, () => 0.5 * rng.normal());
    const v = new Float64Array(3);
    v[p % 3] = 3;
    for (const [k, method] of ['actual', 'POP-MU', 'POP-ODE'].entries()) {
      trajectories.push({
        point: `point ${p}`,
        method,
        probabilities: trajectory(rng.fork(`${p}/${method}`), 3, T, k === 0 ? 0.6 : 0.2, z0, v),
      });
    }
  }
  return { vertexLabels: ['setosa', 'versicolor', 'virginica'] as [string, string, string], trajectories };
}

/** One figure of every kind. */
export async function allFigures(): Promise<Figure[]> {
  const slope = slopeData();
  return [
    await predictedVsActualFigure({ series: scatterData() }),
    await trajectoriesFigure(trajectoryData()),
    await errorOverStepsFigure(errorData()),
    await kernelDriftFigure({ checkpoints: driftData(), referenceName: 'step 0' }),
    await kernelHeatmapFigure({ ...kernelData(), id: 'kernel-heatmap' }),
    await lazinessVsWidthFigure({ widths: slope.widths, gaps: slope.gaps }),
    await discretisationVsStepSizeFigure({ etas: slope.etas, errors: slope.errors }),
    await ternaryFigure(ternaryData()),
  ];
}

/** A report with summary tables and every figure kind. */
export async function sampleReport(): Promise<Report> {
  const figures = await allFigures();
  const byId = (id: string) => figures.find((f) => f.id === id)!;
  return {
    title: 'entk report: synthetic fixture',
    subtitle: 'Every figure kind on seeded synthetic data (test fixture).',
    meta: { dataset: 'synthetic', seed: 7, points: 450, learningRate: 0.05 },
    sections: [
      {
        id: 'summary',
        title: 'Summary',
        text: 'Across {checkpoints} checkpoints the best predictor reached r = {bestR}.\n\nNumbers below are synthetic.',
        numbers: { checkpoints: 5, bestR: 0.987654321 },
        tables: [
          {
            id: 'errors',
            title: 'Prediction error by method',
            caption: 'Mean absolute error of Δ log π over tracked points and labels.',
            columns: [
              { key: 'mae', label: 'mean abs. error', unit: 'nats' },
              { key: 'r', label: 'Pearson r' },
              { key: 'steps', label: 'steps' },
            ],
            rows: [
              { key: 'one-step', label: 'one-step', values: { mae: 0.0123456, r: 0.91234, steps: 1 } },
              { key: 'pop-mu', label: 'POP-MU', values: { mae: 0.00034567, r: 0.99871, steps: 300 } },
              { key: 'pop-ode', label: 'POP-ODE', values: { mae: 2.5e-7, r: Number.NaN, steps: 300 } },
              { key: 'refreshed', label: 'refreshed', values: { mae: 1234567.89, r: -0.5, steps: null } },
            ],
          },
        ],
      },
      {
        id: 'checkpoints',
        title: 'Theory vs reality at checkpoints',
        text: 'Predictions from kernels frozen at each checkpoint, compared with real finetuning.',
        figures: [
          byId('predicted-vs-actual'),
          byId('trajectories'),
          byId('error-over-steps'),
          byId('kernel-drift'),
          byId('kernel-heatmap'),
        ],
      },
      {
        id: 'scaling',
        title: 'Laziness and discretisation',
        figures: [byId('laziness-vs-width'), byId('discretisation-vs-step-size')],
      },
      { id: 'replicator', title: 'Replicator picture', figures: [byId('ternary')] },
    ],
  };
}
