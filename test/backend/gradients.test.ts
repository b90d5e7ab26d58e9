/**
 * entk's Tile gradient (src/backend/gradients.ts) against a float64 plain loop: every position of
 * the tiled output adds its dy to the source element it copies (index mod size along each axis).
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installGradientFixes, tileGradient } from '../../src/backend/gradients.js';
import { Rng } from '../../src/util/rng.js';
import { relMaxError } from '../kernel/helpers.js';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

/** Σ of dy over the copies of each x element, in float64. */
function tileGradient64(dy: Float32Array, shape: number[], reps: number[]): Float64Array {
  const outShape = shape.map((s, d) => s * reps[d]!);
  const size = shape.reduce((a, b) => a * b, 1);
  const out = new Float64Array(size);
  for (let e = 0; e < dy.length; e++) {
    let rem = e;
    let src = 0;
    let stride = 1;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const i = rem % outShape[d]!;
      rem = Math.floor(rem / outShape[d]!);
      src += (i % shape[d]!) * stride;
      stride *= shape[d]!;
    }
    out[src]! += dy[e]!;
  }
  return out;
}

describe('Tile gradient', () => {
  it.each([
    [[5], [3]],
    [
      [2, 3],
      [4, 1],
    ],
    [
      [1, 1, 6],
      [3, 4, 1],
    ],
    [
      [3, 4, 1],
      [1, 1, 7],
    ],
    [
      [2, 1, 3, 2],
      [2, 5, 1, 3],
    ],
    [
      [2, 2],
      [1, 1],
    ],
  ])('x %j tiled %j: tileGradient and tf.grad(tile) = the float64 loop (rel. 1e-6)', (shape, reps) => {
    installGradientFixes();
    const outShape = shape.map((s, d) => s * reps[d]!);
    const dyValues = new Rng(3).normalArray(outShape.reduce((a, b) => a * b, 1));
    const ref = tileGradient64(dyValues, shape, reps);
    const [direct, viaGrad] = tf.tidy(() => {
      const dy = tf.tensor(dyValues, outShape);
      const x = tf.zeros(shape);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.tile(v, reps), dy)))(x);
      return [tileGradient(dy, shape, reps).dataSync(), g.dataSync()];
    });
    const scale = Math.max(...ref.map(Math.abs));
    for (const got of [direct!, viaGrad!]) {
      expect(got.length).toBe(ref.length);
      for (let i = 0; i < ref.length; i++)
        expect(Math.abs(got[i]! - ref[i]!)).toBeLessThanOrEqual(1e-6 * scale);
    }
  });
});

describe('LayerNormalization without γ or β (tfjs 4.22 cannot differentiate it)', () => {
  it.each([
    ['center: false', { center: false }],
    ['scale: false', { scale: false }],
    ['both off', { center: false, scale: false }],
  ])(
    '%s: values = a float64 loop (≤ 1e-6), the eNTK of the Jacobian path = float64 finite differences (≤ 1e-5), and it trains',
    async (_, options) => {
      installGradientFixes();
      const { empiricalNtkFn, finiteDifferenceNtk } = await import('../../src/kernel/index.js');
      const L = tf.layers;
      const input = tf.input({ shape: [4, 6] });
      const e = L.dense({ units: 6 }).apply(input) as tf.SymbolicTensor;
      const norm = L.layerNormalization({ ...options, epsilon: 1e-3 });
      const n = norm.apply(e) as tf.SymbolicTensor;
      const model = tf.model({
        inputs: input,
        outputs: L.dense({ units: 3 }).apply(L.flatten().apply(n) as tf.SymbolicTensor) as tf.SymbolicTensor,
      });
      const rng = new Rng(5);
      for (const w of model.weights) {
        const shape = w.shape as number[];
        const t = tf.tensor(
          rng.normalArray(
            shape.reduce((a, b) => a * b, 1),
            0.6,
          ),
          shape,
        );
        w.write(t);
        t.dispose();
      }
      const x = tf.tensor(rng.normalArray(3 * 24), [3, 4, 6]);
      try {
        // Forward: (h − μ)/√(σ² + ε)·γ + β over the last axis, in float64 from the dense output h.
        const h = tf.tidy(() => model.layers[1]!.apply(x) as tf.Tensor);
        const y = tf.tidy(() => norm.apply(h) as tf.Tensor);
        const hv = h.dataSync();
        const gamma = norm.weights
          .find((w) => w.name.endsWith('gamma'))
          ?.read()
          .dataSync();
        const beta = norm.weights
          .find((w) => w.name.endsWith('beta'))
          ?.read()
          .dataSync();
        const expected = new Float64Array(hv.length);
        for (let r = 0; r < hv.length / 6; r++) {
          let mean = 0;
          for (let k = 0; k < 6; k++) mean += hv[r * 6 + k]! / 6;
          let variance = 0;
          for (let k = 0; k < 6; k++) variance += (hv[r * 6 + k]! - mean) ** 2 / 6;
          for (let k = 0; k < 6; k++) {
            const v = (hv[r * 6 + k]! - mean) / Math.sqrt(variance + 1e-3);
            expected[r * 6 + k] = v * (gamma ? gamma[k]! : 1) + (beta ? beta[k]! : 0);
          }
        }
        let err = 0;
        y.dataSync().forEach((v, k) => {
          err = Math.max(err, Math.abs(v - expected[k]!));
        });
        expect(err).toBeLessThanOrEqual(1e-6 * Math.max(...expected.map(Math.abs)));
        h.dispose();
        y.dispose();
        const k = await empiricalNtkFn(model, { progress: false, implementation: 'jacobian' })(x);
        expect(relMaxError(k.data, finiteDifferenceNtk(model, x).data)).toBeLessThanOrEqual(1e-5);
        // One step of training runs (tfjs's own call threw inside autodiff).
        const optimizer = tf.train.sgd(0.1);
        model.compile({ optimizer, loss: 'meanSquaredError' });
        const target = tf.zeros([3, 3]);
        const history = await model.fit(x, target, { epochs: 1, verbose: 0 });
        target.dispose();
        optimizer.dispose();
        expect(Number.isFinite(history.history.loss![0] as number)).toBe(true);
      } finally {
        model.dispose();
        x.dispose();
      }
    },
  );
});

describe('tf.max / tf.min gradients split dy among tied elements (tfjs 4.22 gave each the whole dy)', () => {
  it('values: ties share dy evenly, no ties one-hot; any axes, keepDims', () => {
    installGradientFixes();
    const x = tf.tensor2d([
      [1, 3, 3, 2],
      [5, 0, -1, 4],
    ]);
    const dy = tf.tensor1d([2, 3]);
    const gx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.max(t, 1), dy)))(x);
    expect(Array.from(gx.dataSync())).toEqual([0, 1, 1, 0, 3, 0, 0, 0]);
    const gmin = tf.grad((t: tf.Tensor) => tf.sum(tf.min(t, 0, true)))(x);
    expect(Array.from(gmin.dataSync())).toEqual([1, 0, 0, 1, 0, 1, 1, 0]);
    const three = tf.tensor3d([
      [
        [2, 2],
        [2, 1],
      ],
    ]);
    const gall = tf.grad((t: tf.Tensor) => tf.max(t))(three);
    expect(Array.from(gall.dataSync()).map((v) => Number(v.toFixed(6)))).toEqual([
      0.333333, 0.333333, 0.333333, 0,
    ]);
    for (const t of [x, dy, gx, gmin, three, gall]) t.dispose();
  });

  it('a global max-pool over identical (blank) patches: the eNTK = float64 finite differences (≤ 1e-5), structured and Jacobian paths', async () => {
    installGradientFixes();
    const { empiricalNtkFn, finiteDifferenceNtk } = await import('../../src/kernel/index.js');
    const L = tf.layers;
    const input = tf.input({ shape: [6, 6, 1] });
    const c = L.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input);
    const g = L.globalMaxPooling2d({}).apply(c) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: L.dense({ units: 2 }).apply(g) as tf.SymbolicTensor });
    const rng = new Rng(8);
    const dense = model.layers[3]!;
    const w = tf.tensor(rng.normalArray(6, 0.7), [3, 2]);
    const b = tf.zeros([2]);
    dense.setWeights([w, b]);
    // Negative kernels and positive biases: every channel's maximum is its bias, on the blank
    // patches (tied at 20 and more positions).
    const k = tf.tensor(
      rng.normalArray(27, 0.3).map((v) => -Math.abs(v) - 0.1),
      [3, 3, 1, 3],
    );
    const bias = tf.tensor1d([0.5, 0.8, 1.1]);
    model.layers[1]!.setWeights([k, bias]);
    const data = new Float32Array(3 * 36);
    data[14] = 1;
    data[36 + 20] = 2;
    data[72 + 7] = 0.5;
    data[72 + 28] = 1.5;
    const x = tf.tensor(data, [3, 6, 6, 1]);
    try {
      const reference = finiteDifferenceNtk(model, x).data;
      for (const implementation of ['structured', 'jacobian'] as const) {
        const kernel = await empiricalNtkFn(model, { progress: false, implementation })(x);
        expect(relMaxError(kernel.data, reference)).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      model.dispose();
      for (const t of [w, b, k, bias, x]) t.dispose();
    }
  });
});
