/**
 * The gradient repairs of src/backend/gradients.ts for ops tfjs 4.22 differentiates wrongly or not
 * at all, each against an independent reference:
 * - AvgPool / AvgPool3D with windows over 'same' padding: tf.grad on cpu and wasm = central finite
 *   differences of the tf.avgPool forward (linear in x, so exact for any step; sums in float64);
 *   a Conv2D → AveragePooling2D('same') model's eNTK = the float64 finite-difference reference.
 * - BatchNormalization with center: false / scale: false: the Jacobian path = the structured path
 *   = float64 finite differences, no leaked tensors, and training (which threw) runs and updates
 *   the moving statistics as tfjs does.
 * - ThresholdedReLU (x·[x > θ], a Greater op without a tfjs gradient): both eNTK paths = float64
 *   finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installGradientFixes } from '../../src/backend/gradients.js';
import { empiricalNtkFn, finiteDifferenceNtk } from '../../src/kernel/index.js';
import { Rng } from '../../src/util/rng.js';
import { relMaxError } from '../kernel/helpers.js';

let before = 0;
beforeEach(async () => {
  await tf.setBackend('wasm');
  installGradientFixes();
  before = tf.memory().numTensors;
});
afterEach(async () => {
  await tf.setBackend('wasm');
  expect(tf.memory().numTensors).toBe(before);
});

function seedWeights(model: tf.LayersModel, seed: number, std = 0.5): void {
  const rng = new Rng(seed);
  for (const w of model.weights) {
    const shape = w.shape as number[];
    const t = tf.tensor(
      rng.normalArray(
        shape.reduce((a, b) => a * b, 1),
        std,
      ),
      shape,
    );
    w.write(t);
    t.dispose();
  }
}

/**
 * ∂/∂x_i Σ_j c_j·pool(x)_j by central differences of the forward (step 1: the pooling is linear),
 * differences taken in float64.
 */
function poolGradientFd(
  pool: (x: tf.Tensor) => tf.Tensor,
  x: Float32Array,
  shape: number[],
  c: Float32Array,
) {
  const f = (v: Float32Array): number =>
    tf.tidy(() => {
      const y = pool(tf.tensor(v, shape)).dataSync();
      let s = 0;
      for (let j = 0; j < y.length; j++) s += y[j]! * c[j]!;
      return s;
    });
  const out = new Float64Array(x.length);
  const v = Float32Array.from(x);
  for (let i = 0; i < x.length; i++) {
    v[i] = x[i]! + 1;
    const plus = f(v);
    v[i] = x[i]! - 1;
    const minus = f(v);
    v[i] = x[i]!;
    out[i] = (plus - minus) / 2;
  }
  return out;
}

/** Both eNTK paths (structured, whole-model Jacobian) = float64 finite differences (≤ 1e-5). */
async function expectBothPathsAsDifferences(model: tf.LayersModel, x: tf.Tensor): Promise<void> {
  const reference = finiteDifferenceNtk(model, x).data;
  for (const implementation of ['structured', 'jacobian'] as const) {
    const k = await empiricalNtkFn(model, { progress: false, implementation })(x);
    expect(relMaxError(k.data, reference), implementation).toBeLessThanOrEqual(1e-5);
  }
}

describe('AvgPool / AvgPool3D gradients over padding (tfjs 4.22 divided by the full window)', () => {
  const cases: [string, number[], (x: tf.Tensor) => tf.Tensor][] = [
    ['avgPool 3×3 stride 1 same', [2, 5, 4, 3], (x) => tf.avgPool(x as tf.Tensor4D, 3, 1, 'same')],
    ['avgPool 3×3 stride 2 same', [2, 7, 6, 2], (x) => tf.avgPool(x as tf.Tensor4D, 3, 2, 'same')],
    [
      'avgPool [2, 3] stride [1, 2] same',
      [1, 5, 7, 2],
      (x) => tf.avgPool(x as tf.Tensor4D, [2, 3], [1, 2], 'same'),
    ],
    [
      'avgPool 2×2 stride 2 valid (no padding)',
      [2, 6, 4, 2],
      (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid'),
    ],
    [
      'avgPool1d-like [3, 1] stride 1 same',
      [2, 7, 1, 3],
      (x) => tf.avgPool(x as tf.Tensor4D, [3, 1], 1, 'same'),
    ],
    ['avgPool3d 2 stride 1 same', [1, 4, 3, 3, 2], (x) => tf.avgPool3d(x as tf.Tensor5D, 2, 1, 'same')],
    ['avgPool3d 3 stride 2 same', [1, 5, 4, 3, 2], (x) => tf.avgPool3d(x as tf.Tensor5D, 3, 2, 'same')],
  ];
  for (const backend of ['cpu', 'wasm']) {
    it.each(cases)(
      `${backend}: %s: tf.grad = finite differences of the forward (rel. 1e-5)`,
      async (_, shape, pool) => {
        await tf.setBackend(backend);
        const rng = new Rng(11);
        const x = rng.normalArray(shape.reduce((a, b) => a * b, 1));
        const ySize = tf.tidy(() => pool(tf.zeros(shape)).size);
        const c = rng.normalArray(ySize);
        const reference = poolGradientFd(pool, x, shape, c);
        const got = tf.tidy(() => {
          const cot = tf.tensor(c, pool(tf.zeros(shape)).shape);
          return tf
            .grad((t: tf.Tensor) => tf.sum(tf.mul(pool(t), cot)))(tf.tensor(x, shape))
            .dataSync();
        });
        expect(relMaxError(got, reference)).toBeLessThanOrEqual(1e-5);
      },
    );
  }

  it('the stock kernel runs unchanged (bit for bit) where no window touches padding', async () => {
    const x = tf.tensor(new Rng(4).normalArray(2 * 6 * 4 * 2), [2, 6, 4, 2]);
    const dy = tf.tensor(new Rng(5).normalArray(2 * 3 * 2 * 2), [2, 3, 2, 2]);
    const [fixed, stock] = tf.tidy(() => [
      tf
        .grad((t: tf.Tensor) => tf.sum(tf.mul(tf.avgPool(t as tf.Tensor4D, 2, 2, 'same'), dy)))(x)
        .dataSync(),
      (
        tf
          .engine()
          .runKernel('AvgPoolGrad', { dy, input: x }, { filterSize: 2, strides: 2, pad: 'same' }) as tf.Tensor
      ).dataSync(),
    ]);
    expect(Array.from(fixed!)).toEqual(Array.from(stock!));
    x.dispose();
    dy.dispose();
  });

  it('Conv2D → AveragePooling2D(same): eNTK of both paths = float64 finite differences (≤ 1e-5)', async () => {
    const L = tf.layers;
    const model = tf.sequential({
      layers: [
        L.conv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 2, padding: 'same', activation: 'tanh' }),
        L.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same' }),
        L.flatten(),
        L.dense({ units: 2 }),
      ],
    });
    seedWeights(model, 21);
    const x = tf.tensor(new Rng(22).normalArray(3 * 50), [3, 5, 5, 2]);
    try {
      await expectBothPathsAsDifferences(model, x);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('BatchNormalization without γ or β (tfjs 4.22 could neither differentiate nor train it)', () => {
  it.each([
    ['center: false', { center: false }],
    ['scale: false', { scale: false }],
    ['both off', { center: false, scale: false }],
  ])(
    '%s: Jacobian path = structured path = float64 finite differences (≤ 1e-5); it trains',
    async (_, options) => {
      const L = tf.layers;
      const bn = L.batchNormalization({ ...options, epsilon: 1e-3, momentum: 0.9 });
      const model = tf.sequential({
        layers: [
          L.dense({ inputShape: [4], units: 5 }),
          bn,
          L.activation({ activation: 'tanh' }),
          L.dense({ units: 3 }),
        ],
      });
      seedWeights(model, 31);
      // Moving variance must stay positive.
      const variance = bn.weights.find((w) => w.name.includes('moving_variance'))!;
      const positive = tf.tidy(() => tf.add(tf.abs(variance.read()), 0.5));
      variance.write(positive);
      positive.dispose();
      const x = tf.tensor(new Rng(32).normalArray(3 * 4), [3, 4]);
      try {
        await expectBothPathsAsDifferences(model, x);
        // Training: batch moments, and the moving statistics move towards them (momentum 0.9).
        const h = tf.tidy(() => model.layers[0]!.apply(x) as tf.Tensor);
        const { mean, variance: batchVariance } = tf.moments(h, 0);
        const movingMean = bn.weights.find((w) => w.name.includes('moving_mean'))!;
        const expected = tf.tidy(() => tf.add(tf.mul(movingMean.read(), 0.9), tf.mul(mean, 0.1)).dataSync());
        const optimizer = tf.train.sgd(0.05);
        model.compile({ optimizer, loss: 'meanSquaredError' });
        const target = tf.zeros([3, 3]);
        const history = await model.fit(x, target, { epochs: 1, batchSize: 3, verbose: 0 });
        expect(Number.isFinite(history.history.loss![0] as number)).toBe(true);
        const moved = movingMean.read().dataSync();
        for (let i = 0; i < 5; i++) expect(moved[i]!).toBeCloseTo(expected[i]!, 5);
        for (const t of [h, mean, batchVariance, target]) t.dispose();
        optimizer.dispose();
      } finally {
        model.dispose();
        x.dispose();
      }
    },
  );
});

describe('ThresholdedReLU (Greater had no gradient in tfjs 4.22)', () => {
  it('both eNTK paths = float64 finite differences (≤ 1e-5)', async () => {
    const L = tf.layers;
    const model = tf.sequential({
      layers: [
        L.dense({ inputShape: [4], units: 6 }),
        L.thresholdedReLU({ theta: 0.1 }),
        L.dense({ units: 3 }),
      ],
    });
    seedWeights(model, 41, 0.8);
    const x = tf.tensor(new Rng(42).normalArray(3 * 4), [3, 4]);
    try {
      await expectBothPathsAsDifferences(model, x);
    } finally {
      model.dispose();
      x.dispose();
    }
  });

  it('comparison ops differentiate to exactly 0', () => {
    const a = tf.tensor1d([1, -2, 3]);
    const b = tf.tensor1d([0, 0, 3]);
    const grads = tf.tidy(() =>
      tf
        .grads((p: tf.Tensor, q: tf.Tensor) =>
          tf.sum(
            tf.addN([
              tf.cast(tf.greater(p, q), 'float32'),
              tf.cast(tf.less(p, q), 'float32'),
              tf.cast(tf.lessEqual(p, q), 'float32'),
              tf.cast(tf.equal(p, q), 'float32'),
              tf.cast(tf.notEqual(p, q), 'float32'),
              tf.mul(p, tf.cast(tf.any(tf.greater(p, 0)), 'float32')),
            ]),
          ),
        )([a, b])
        .map((g) => Array.from(g.dataSync())),
    );
    // ∂/∂p of p·[any(p > 0)] = 1; every comparison contributes 0.
    expect(grads).toEqual([
      [1, 1, 1],
      [0, 0, 0],
    ]);
    a.dispose();
    b.dispose();
  });
});
