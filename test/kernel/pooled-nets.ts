/**
 * Small networks with convolutions behind max-poolings, for the pooled rule's tests (pooled.test.ts
 * on wasm, pooled-cpu.test.ts on the cpu backend).
 */
import * as tf from '@tensorflow/tfjs';
import { randomizeWeights } from './helpers.js';

const L = tf.layers;
type ST = tf.SymbolicTensor;

/** Conv1D → ReLU → MaxPooling1D (overlapping windows: size 3, stride 2) → Dense. */
export function seqNet(): tf.LayersModel {
  const x = tf.input({ shape: [12, 3] });
  const c = L.conv1d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(x) as ST;
  const p = L.maxPooling1d({ poolSize: 3, strides: 2 }).apply(c) as ST;
  const model = tf.model({
    inputs: x,
    outputs: L.dense({ units: 4 }).apply(L.flatten().apply(p) as ST) as ST,
  });
  randomizeWeights(model, 51, 0.5);
  return model;
}

/** Conv2D → BatchNorm → ReLU → MaxPool 'same' (3 × 3, stride 2), then a conv without bias → MaxPool (3 × 3: one window). */
export function bnNet(): tf.LayersModel {
  const x = tf.input({ shape: [8, 8, 2] });
  const c = L.conv2d({ filters: 8, kernelSize: 3, padding: 'same' }).apply(x) as ST;
  const b = L.activation({ activation: 'relu' }).apply(L.batchNormalization().apply(c) as ST) as ST;
  const p = L.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }).apply(b) as ST;
  const d = L.conv2d({ filters: 6, kernelSize: 2, useBias: false, activation: 'tanh' }).apply(p) as ST;
  const g = L.maxPooling2d({ poolSize: 3 }).apply(d) as ST;
  const model = tf.model({
    inputs: x,
    outputs: L.dense({ units: 5 }).apply(L.flatten().apply(g) as ST) as ST,
  });
  randomizeWeights(model, 52, 0.5);
  for (const w of model.weights) {
    if (!/moving_variance/.test(w.name)) continue;
    const t = tf.tidy(() => tf.add(tf.abs(w.read()), 1));
    w.write(t);
    t.dispose();
  }
  return model;
}

/** Conv2D strided 'same' → ReLU → MaxPool, and a dilated 'valid' Conv2D → tanh → MaxPool (stride 1, overlapping). */
export function stridedNet(): tf.LayersModel {
  const x = tf.input({ shape: [9, 9, 2] });
  const a = L.conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu' }).apply(
    x,
  ) as ST;
  const p = L.maxPooling2d({ poolSize: 2 }).apply(a) as ST;
  const b = L.conv2d({ filters: 3, kernelSize: 2, dilationRate: 2, activation: 'tanh' }).apply(x) as ST;
  const q = L.maxPooling2d({ poolSize: 2, strides: 1 }).apply(b) as ST;
  const f = L.concatenate().apply([L.flatten().apply(p) as ST, L.flatten().apply(q) as ST]) as ST;
  const model = tf.model({ inputs: x, outputs: L.dense({ units: 4 }).apply(f) as ST });
  randomizeWeights(model, 53, 0.5);
  return model;
}
