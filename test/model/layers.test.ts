import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import { ElementwiseActivation, Scale, ScaledDense } from '../../src/model/index.js';
import { dense64, erf64, gelu64, maxRelError, testValues } from './reference.js';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

/** A one-layer model around `layer` with input [fanIn]. */
function wrap(layer: tf.layers.Layer, fanIn: number): tf.Sequential {
  return tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [fanIn] }), layer] });
}

describe('ScaledDense (NTK parameterisation)', () => {
  it('scales a @ kernel by 1/sqrt(fan_in) in the forward pass (float64 reference, rel. err <= 1e-6)', () => {
    const n = 4;
    const fanIn = 7;
    const units = 3;
    const layer = new ScaledDense({ units });
    const model = wrap(layer, fanIn);
    expect(layer.weightScale).toBe(1 / Math.sqrt(fanIn));
    const W = testValues(fanIn * units, 3);
    const b = testValues(units, 4);
    const weights = [tf.tensor2d(W, [fanIn, units]), tf.tensor1d(b)];
    layer.setWeights(weights);
    const a = testValues(n * fanIn, 5);
    const x = tf.tensor2d(a, [n, fanIn]);
    const y = model.predict(x) as tf.Tensor;
    const got = y.dataSync();
    const expected = dense64(a, n, fanIn, W, units, b, 1 / Math.sqrt(fanIn), 1);
    expect(maxRelError(got, expected)).toBeLessThan(1e-6);
    // Without the scale the output would be sqrt(7) ≈ 2.6 times larger: the check can fail.
    const unscaled = dense64(a, n, fanIn, W, units, b, 1, 1);
    expect(maxRelError(got, unscaled)).toBeGreaterThan(0.1);
    tf.dispose([...weights, x, y]);
    model.dispose();
  });

  it('honours explicit weightScale and biasScale, and applies to the last axis of rank-3 inputs', () => {
    const layer = new ScaledDense({ units: 2, weightScale: 0.5, biasScale: 3 });
    const model = tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [2, 3] }), layer] });
    const W = testValues(6, 7);
    const b = testValues(2, 8);
    const weights = [tf.tensor2d(W, [3, 2]), tf.tensor1d(b)];
    layer.setWeights(weights);
    const a = testValues(2 * 2 * 3, 9);
    const x = tf.tensor3d(a, [2, 2, 3]);
    const y = model.predict(x) as tf.Tensor;
    expect(y.shape).toEqual([2, 2, 2]);
    expect(maxRelError(y.dataSync(), dense64(a, 4, 3, W, 2, b, 0.5, 3))).toBeLessThan(1e-6);
    expect(layer.getConfig()).toMatchObject({ units: 2, weightScale: 0.5, biasScale: 3, useBias: true });
    tf.dispose([...weights, x, y]);
    model.dispose();
  });

  it('has the gradient d/dW sum(c ⊙ h) = weightScale · aᵀ c (float64 reference)', () => {
    const fanIn = 5;
    const units = 4;
    const n = 3;
    const layer = new ScaledDense({ units });
    const model = wrap(layer, fanIn);
    const W = testValues(fanIn * units, 11);
    const weights = [tf.tensor2d(W, [fanIn, units]), tf.zeros([units])];
    layer.setWeights(weights);
    const a = testValues(n * fanIn, 12);
    const c = testValues(n * units, 13);
    const x = tf.tensor2d(a, [n, fanIn]);
    const ct = tf.tensor2d(c, [n, units]);
    const kernel = layer.trainableWeights[0]!.read() as tf.Variable;
    const { grads, value } = tf.variableGrads(
      () => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, ct)) as tf.Scalar,
      [kernel],
    );
    const g = grads[kernel.name]!.dataSync();
    const expected = new Float64Array(fanIn * units);
    for (let t = 0; t < fanIn; t++)
      for (let j = 0; j < units; j++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += a[i * fanIn + t]! * c[i * units + j]!;
        expected[t * units + j] = s / Math.sqrt(fanIn);
      }
    expect(maxRelError(g, expected)).toBeLessThan(1e-6);
    tf.dispose([...weights, x, ct, value, ...Object.values(grads)]);
    model.dispose();
  });

  it('rejects bad arguments with errors naming them', () => {
    expect(() => new ScaledDense({ units: 0 })).toThrow(InvalidArgumentError);
    expect(() => new ScaledDense({ units: 0 })).toThrow(
      /ScaledDense.units: expected a positive integer, received 0/,
    );
    expect(() => new ScaledDense({ units: 2, weightScale: Number.NaN })).toThrow(/ScaledDense.weightScale/);
  });
});

describe('Scale', () => {
  it('multiplies by its factor', () => {
    const model = wrap(new Scale({ factor: -2.5 }), 3);
    const x = tf.tensor2d([1, -2, 0.5], [1, 3]);
    const y = model.predict(x) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([-2.5, 5, -1.25]);
    tf.dispose([x, y]);
    model.dispose();
    expect(() => new Scale({ factor: Number.POSITIVE_INFINITY })).toThrow(/Scale.factor/);
  });
});

describe('element-wise activations', () => {
  const xs = Array.from({ length: 121 }, (_, i) => -6 + i * 0.1);

  it('ElementwiseActivation erf matches a float64 series (abs. err <= 5e-7)', () => {
    const model = wrap(new ElementwiseActivation({ fn: 'erf' }), xs.length);
    const x = tf.tensor2d(xs, [1, xs.length]);
    const y = model.predict(x) as tf.Tensor;
    const got = y.dataSync();
    xs.forEach((v, i) => {
      expect(Math.abs(got[i]! - erf64(v))).toBeLessThan(5e-7);
    });
    tf.dispose([x, y]);
    model.dispose();
  });

  it('ElementwiseActivation gelu and tfjs Activation gelu both equal x·Φ(x) (abs. err <= 1e-6)', () => {
    for (const layer of [
      new ElementwiseActivation({ fn: 'gelu' }),
      tf.layers.activation({ activation: 'gelu' }),
    ]) {
      const model = wrap(layer, xs.length);
      const x = tf.tensor2d(xs, [1, xs.length]);
      const y = model.predict(x) as tf.Tensor;
      const got = y.dataSync();
      xs.forEach((v, i) => {
        expect(Math.abs(got[i]! - gelu64(v))).toBeLessThan(1e-6);
      });
      tf.dispose([x, y]);
      model.dispose();
    }
  });

  it('erf has the derivative 2/sqrt(pi)·exp(-x²) under autodiff', () => {
    const x = tf.tensor1d(xs);
    const g = tf.grad((t: tf.Tensor) =>
      tf.sum(new ElementwiseActivation({ fn: 'erf' }).apply(t) as tf.Tensor),
    )(x);
    const got = g.dataSync();
    xs.forEach((v, i) => {
      expect(Math.abs(got[i]! - (2 / Math.sqrt(Math.PI)) * Math.exp(-v * v))).toBeLessThan(1e-6);
    });
    tf.dispose([x, g]);
  });

  it('rejects an unknown function', () => {
    expect(() => new ElementwiseActivation({ fn: 'swish' as 'erf' })).toThrow(
      /ElementwiseActivation.fn: expected one of erf, gelu, received "swish"/,
    );
  });
});
