import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assertGradientsTrusted, installWasmKernelFixes, untrustedOps } from '../../src/backend/index.js';
import { WASM_FIXED_KERNELS } from '../../src/backend/wasm-kernels.js';
import { UnsupportedError } from '../../src/errors.js';
import { empiricalNtkFn } from '../../src/kernel/index.js';
import { normalPoints, randomizeWeights, relMaxError } from '../kernel/helpers.js';

let before = 0;
beforeEach(() => {
  installWasmKernelFixes();
  before = tf.memory().numTensors;
});
afterEach(async () => {
  await tf.setBackend('wasm');
  expect(tf.memory().numTensors).toBe(before);
});

/** Conv2D(same) → ReLU → BatchNormalization → MaxPooling2D → Dense: the model the wasm MaxPool gradient broke. */
function convBnPool(): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({
        inputShape: [6, 6, 1],
        filters: 2,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
      }),
      tf.layers.batchNormalization(),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ],
  });
  randomizeWeights(model, 5, 0.5);
  // a positive moving variance (randomizeWeights may make it negative)
  const bn = model.layers[1]!;
  const [gamma, beta, mean, variance] = bn.getWeights();
  const positive = tf.tidy(() => tf.add(tf.abs(variance!), 0.5));
  bn.setWeights([gamma!, beta!, mean!, positive]);
  positive.dispose();
  return model;
}

describe('untrustedOps / assertGradientsTrusted', () => {
  it('trusts cpu and the repaired wasm kernels, and nothing fragile on an unchecked backend', () => {
    expect(untrustedOps('cpu').size).toBe(0);
    const wasm = untrustedOps('wasm');
    for (const name of WASM_FIXED_KERNELS) expect(wasm.has(name), name).toBe(false);
    expect(wasm.get('Conv3DBackpropFilterV2')).toMatch(/strides > 1/);
    const webgl = untrustedOps('webgl');
    for (const name of ['MaxPoolGrad', 'DepthwiseConv2dNativeBackpropFilter', 'UnsortedSegmentSum']) {
      expect(webgl.get(name), name).toMatch(/not checked against the cpu backend on 'webgl'/);
    }
  });

  it('refuses a layer whose kernels the backend is not trusted with, naming layer and backend', () => {
    const model = convBnPool();
    try {
      expect(() => assertGradientsTrusted(model, 'wasm')).not.toThrow();
      expect(() => assertGradientsTrusted(model, 'cpu')).not.toThrow();
      const name = model.layers[2]!.name;
      expect(() => assertGradientsTrusted(model, 'tensorflow')).toThrow(UnsupportedError);
      // the first fragile layer is the Conv2D
      expect(() => assertGradientsTrusted(model, 'tensorflow')).toThrow(
        /layer 'conv2d.*\(Conv2D\).*backend 'tensorflow'/,
      );
      const pool = tf.sequential({
        layers: [tf.layers.maxPooling2d({ inputShape: [4, 4, 1], poolSize: 2 })],
      });
      expect(() => assertGradientsTrusted(pool, 'webgl')).toThrow(
        new RegExp(`layer '${pool.layers[0]!.name}' \\(MaxPooling2D\\) needs the MaxPool kernel`),
      );
      expect(name).toMatch(/max_pooling2d/);
      // dense / elementwise layers are trusted everywhere
      const mlp = tf.sequential({
        layers: [tf.layers.dense({ inputShape: [3], units: 2, activation: 'tanh' })],
      });
      expect(() => assertGradientsTrusted(mlp, 'tensorflow')).not.toThrow();
      mlp.dispose();
      pool.dispose();
    } finally {
      model.dispose();
    }
  });

  it('refuses dilated convolutions (tfjs has no gradient for them), from empiricalNtkFn too', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [7, 7, 1], filters: 2, kernelSize: 3, dilationRate: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2 }),
      ],
    });
    try {
      expect(() => assertGradientsTrusted(model, 'cpu')).toThrow(
        /dilationRate \[2,2\].*no gradient for dilated/,
      );
      expect(() => empiricalNtkFn(model, { implementation: 'jacobian' })).toThrow(UnsupportedError);
    } finally {
      model.dispose();
    }
  });

  it('Conv2D → ReLU → BatchNorm → MaxPool: the eNTK on wasm matches cpu (rel. max <= 1e-5; was 3.5e-2)', async () => {
    const model = convBnPool();
    // relu zeros and an integer grid make tied and all-zero pooling windows
    const x = tf.tidy(() => tf.round(tf.mul(normalPoints(3, [6, 6, 1], 9), 2)).div(2));
    try {
      const options = { implementation: 'jacobian', accumulation: 'float64', progress: false } as const;
      const wasm = await empiricalNtkFn(model, options)(x);
      await tf.setBackend('cpu');
      const cpu = await empiricalNtkFn(model, options)(x);
      await tf.setBackend('wasm');
      expect(relMaxError(wasm.data, cpu.data)).toBeLessThan(1e-5);
    } finally {
      x.dispose();
      model.dispose();
    }
  });
});
