import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../src/errors.js';
import {
  buildModel,
  countParameters,
  MODEL_PRESETS,
  type ModelSpec,
  resolveModelSpec,
  ScaledDense,
} from '../../src/model/index.js';
import { activations64, dense64, maxRelError, testValues } from './reference.js';

let before = 0;
beforeEach(() => {
  before = tf.memory().numTensors;
});
afterEach(() => {
  expect(tf.memory().numTensors).toBe(before);
});

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => w.dataSync() as Float32Array);
}

describe('buildModel', () => {
  // (Transformer presets take token ids and a mask: test/model/transformer.test.ts.)
  it.each(Object.keys(MODEL_PRESETS).filter((n) => MODEL_PRESETS[n]!.kind !== 'transformer'))(
    'preset %s builds and maps [n, ...inputShape] to logits [n, V]',
    (name) => {
      const spec = resolveModelSpec(name);
      const inputShape = spec.kind === 'cnn' ? [8, 8, 1] : [64];
      const model = buildModel(spec, { inputShape, numClasses: 10, seed: 1 });
      const x = tf.tensor(testValues(3 * 64, 2), [3, ...inputShape]);
      const y = model.predict(x) as tf.Tensor;
      expect(y.shape).toEqual([3, 10]);
      expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
      // Layer contract: no fused activations, parameterised layers linear, no softmax at the end.
      for (const layer of model.layers) {
        const config = layer.getConfig();
        if (['Dense', 'Conv2D'].includes(layer.getClassName())) expect(config.activation).toBe('linear');
        expect(config.activation).not.toBe('softmax');
      }
      const classes = new Set(model.layers.map((l) => l.getClassName()));
      for (const c of classes) {
        expect([
          'Dense',
          'ScaledDense',
          'Conv2D',
          'Activation',
          'ElementwiseActivation',
          'Scale',
          'Flatten',
          'Reshape',
          'MaxPooling2D',
        ]).toContain(c);
      }
      tf.dispose([x, y]);
      model.dispose();
    },
  );

  it('builds a standard MLP equal to a float64 forward pass for every activation (rel. err <= 1e-5)', () => {
    for (const activation of ['relu', 'tanh', 'gelu', 'erf'] as const) {
      for (const parameterization of ['standard', 'ntk'] as const) {
        const spec: ModelSpec = {
          kind: 'mlp',
          widths: [6, 5],
          activation,
          parameterization,
          outputScale: 0.5,
        };
        const model = buildModel(spec, { inputShape: [4], numClasses: 3, seed: 7 });
        const n = 5;
        const input = testValues(n * 4, 8);
        const x = tf.tensor2d(input, [n, 4]);
        const y = model.predict(x) as tf.Tensor;
        // float64 reference through the same weights
        const w = weightsOf(model);
        const f = activations64[activation]!;
        let a: Float64Array = Float64Array.from(input);
        let width = 4;
        [6, 5, 3].forEach((units, i) => {
          const scale = parameterization === 'ntk' ? 1 / Math.sqrt(width) : 1;
          a = dense64(a, n, width, w[2 * i]!, units, w[2 * i + 1]!, scale, 1);
          if (i < 2) a = a.map(f);
          width = units;
        });
        a = a.map((v) => 0.5 * v);
        expect(maxRelError(y.dataSync(), a)).toBeLessThan(1e-5);
        tf.dispose([x, y]);
        model.dispose();
      }
    }
  });

  it('builds the linear softmax model: logits = Wᵀx + b, one Dense layer', () => {
    const model = buildModel(resolveModelSpec('linear'), { inputShape: [5], numClasses: 4, seed: 3 });
    expect(model.layers.map((l) => l.getClassName())).toEqual(['Dense']);
    const [W, b] = weightsOf(model);
    const input = testValues(2 * 5, 4);
    const x = tf.tensor2d(input, [2, 5]);
    const y = model.predict(x) as tf.Tensor;
    expect(maxRelError(y.dataSync(), dense64(input, 2, 5, W!, 4, b!))).toBeLessThan(1e-6);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('uses ScaledDense with weightScale 1/sqrt(fan_in) and N(0,1) weights, zero biases, under ntk', () => {
    const model = buildModel(
      { kind: 'mlp', widths: [512, 512], activation: 'relu', parameterization: 'ntk' },
      {
        inputShape: [64],
        numClasses: 10,
        seed: 0,
      },
    );
    const dense = model.layers.filter((l) => l instanceof ScaledDense) as ScaledDense[];
    expect(dense.map((l) => l.weightScale)).toEqual([1 / 8, 1 / Math.sqrt(512), 1 / Math.sqrt(512)]);
    const w = weightsOf(model);
    const kernel = w[2]!; // 512×512 = 262144 draws: sample std within 1% of 1, mean within 0.01
    const mean = kernel.reduce((s, v) => s + v, 0) / kernel.length;
    const std = Math.sqrt(kernel.reduce((s, v) => s + (v - mean) ** 2, 0) / kernel.length);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(std - 1)).toBeLessThan(0.01);
    expect(w[1]!.every((v) => v === 0)).toBe(true);
    model.dispose();
  });

  it('initialises standard layers He (before ReLU) and Glorot (output), biases 0', () => {
    const model = buildModel(resolveModelSpec('mlp'), { inputShape: [64], numClasses: 10, seed: 0 });
    const w = weightsOf(model);
    const std = (a: Float32Array) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    // 65536 draws: the sample std is within ~0.6% (2σ) of the true one.
    expect(Math.abs(std(w[2]!) / Math.sqrt(2 / 256) - 1)).toBeLessThan(0.02); // He
    expect([w[1]!, w[3]!, w[5]!].every((b) => b.every((v) => v === 0))).toBe(true);
    model.dispose();
    // An output layer as wide as its input tells Glorot (√(2/512)) from He (√(2/256)) apart: 1.41×.
    const square = buildModel(
      { kind: 'mlp', widths: [256], activation: 'relu', parameterization: 'standard' },
      { inputShape: [64], numClasses: 256, seed: 0 },
    );
    const out = weightsOf(square)[2]!;
    expect(Math.abs(std(out) / Math.sqrt(2 / 512) - 1)).toBeLessThan(0.02);
    square.dispose();
  });

  it('is deterministic: same seed gives bitwise identical weights, another seed different ones', () => {
    for (const name of ['mlp', 'mlp-ntk-erf', 'cnn', 'linear']) {
      const spec = resolveModelSpec(name);
      const inputShape = spec.kind === 'cnn' ? [8, 8, 1] : [64];
      const a = buildModel(spec, { inputShape, numClasses: 10, seed: 42 });
      const b = buildModel(spec, { inputShape, numClasses: 10, seed: 42 });
      const c = buildModel(spec, { inputShape, numClasses: 10, seed: 43 });
      const [wa, wb, wc] = [weightsOf(a), weightsOf(b), weightsOf(c)];
      wa.forEach((w, i) => {
        expect(Buffer.from(w.buffer).equals(Buffer.from(wb[i]!.buffer))).toBe(true);
      });
      expect(Buffer.from(wa[0]!.buffer).equals(Buffer.from(wc[0]!.buffer))).toBe(false);
      for (const m of [a, b, c]) m.dispose();
    }
  });

  it('builds the CNN on [8, 8, 1] images, and on flat [64] inputs through a Reshape', () => {
    const images = buildModel(resolveModelSpec('cnn'), { inputShape: [8, 8, 1], numClasses: 10, seed: 1 });
    const flat = buildModel(resolveModelSpec('cnn'), { inputShape: [64], numClasses: 10, seed: 1 });
    expect(flat.layers[0]!.getClassName()).toBe('Reshape');
    const v = testValues(2 * 64, 5);
    const x1 = tf.tensor4d(v, [2, 8, 8, 1]);
    const x2 = tf.tensor2d(v, [2, 64]);
    const [y1, y2] = [images.predict(x1) as tf.Tensor, flat.predict(x2) as tf.Tensor];
    expect(Array.from(y2.dataSync())).toEqual(Array.from(y1.dataSync()));
    tf.dispose([x1, x2, y1, y2]);
    images.dispose();
    flat.dispose();
    expect(() => buildModel(resolveModelSpec('cnn'), { inputShape: [10], numClasses: 3, seed: 0 })).toThrow(
      /inputShape: expected an image shape/,
    );
  });

  it('counts trainable parameters P', () => {
    const model = buildModel(resolveModelSpec('mlp'), { inputShape: [64], numClasses: 10, seed: 0 });
    expect(countParameters(model)).toBe(64 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10);
    model.dispose();
  });

  it('rejects bad options and specs with errors naming the key', () => {
    const spec = resolveModelSpec('mlp');
    expect(() => buildModel(spec, { inputShape: [64], numClasses: 1, seed: 0 })).toThrow(
      /numClasses: expected an integer >= 2/,
    );
    expect(() => buildModel(spec, { inputShape: [0], numClasses: 3, seed: 0 })).toThrow(/inputShape/);
    expect(() => resolveModelSpec('resnet')).toThrow(InvalidArgumentError);
    expect(() => resolveModelSpec('resnet')).toThrow(/model: expected a model preset \(mlp, mlp-small/);
    expect(() =>
      resolveModelSpec({ kind: 'mlp', widths: [0], activation: 'relu', parameterization: 'ntk' }),
    ).toThrow(/model.widths\[0\]: expected a number > 0, received 0/);
    expect(() =>
      resolveModelSpec({
        kind: 'mlp',
        widths: [4],
        activation: 'swish',
        parameterization: 'ntk',
      } as unknown as ModelSpec),
    ).toThrow(/model.activation: .*received "swish"/);
    expect(() => resolveModelSpec({ kind: 'linear', depth: 3 } as unknown as ModelSpec)).toThrow(
      /model.depth/,
    );
    expect(() => resolveModelSpec({ kind: 'rnn' } as unknown as ModelSpec)).toThrow(
      /model.kind: expected one of "mlp"/,
    );
  });
});
