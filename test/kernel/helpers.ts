/**
 * Shared fixtures of the kernel tests: tiny seeded networks of every supported layer type, seeded
 * inputs, and the error measures the tolerances are stated in.
 */
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { empiricalNtkFn } from '../../src/kernel/index.js';
import { ElementwiseActivation, Scale, ScaledDense } from '../../src/model/index.js';
import { Rng } from '../../src/util/rng.js';

/**
 * The tolerance rule of every comparison against a reference: the relative max error
 * max_ij |K_ij − Kref_ij| / max_ij |Kref_ij|.
 */
export function relMaxError(k: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (k.length !== ref.length) throw new Error(`length mismatch ${k.length} vs ${ref.length}`);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(k[i]! - ref[i]!));
    scale = Math.max(scale, Math.abs(ref[i]!));
  }
  if (scale === 0) throw new Error('reference is identically zero: the comparison could not fail');
  return err / scale;
}

/** The bytes of an array (bitwise comparisons: Buffer.compare(bytes(a), bytes(b)) === 0). */
export const bytes = (a: Float32Array | Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/**
 * The full kernel of `x` is symmetric bit for bit (K_ij(x, x′) = K_ji(x′, x) even for terms that
 * sum the two in different orders), and its rows streamed with order 'rows' equal it bit for bit —
 * in float32 and float64 accumulation, with 1 and 2 threads, blocks of `blockSize` points; every
 * kernel lists `rule` among its rules.
 */
export async function expectSymmetricAndStreamed(
  model: tf.LayersModel,
  x: tf.Tensor,
  rule: string,
  blockSize: number,
): Promise<void> {
  for (const accumulation of ['float32', 'float64'] as const) {
    for (const threads of [1, 2]) {
      const f = empiricalNtkFn(model, { progress: false, blockSize, accumulation, threads });
      const whole = await f(x);
      expect(whole.rules!.map((r) => r.rule)).toContain(rule);
      const N = Math.round(Math.sqrt(whole.data.length));
      const perPoint = N / x.shape[0];
      let asymmetric = 0;
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < i; j++) if (whole.data[i * N + j] !== whole.data[j * N + i]) asymmetric++;
      }
      expect(asymmetric, `${accumulation}, ${threads} thread(s)`).toBe(0);
      const rows = new (accumulation === 'float32' ? Float32Array : Float64Array)(N * N);
      await f.stream(x, null, (b) => rows.set(b.data, b.rowStart * perPoint * N), { order: 'rows' });
      expect(Buffer.compare(bytes(rows), bytes(whole.data))).toBe(0);
    }
  }
}

/** Seeded N(0, 1) points of shape [n, ...shape] as a float32 tensor. */
export function normalPoints(n: number, shape: number[], seed: number): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(new Rng(seed).normalArray(n * size), [n, ...shape], 'float32');
}

/** Seeded integer token ids in [0, vocab) of shape [n, length] (float32, as tfjs feeds Embedding). */
export function tokenPoints(n: number, length: number, vocab: number, seed: number): tf.Tensor {
  const rng = new Rng(seed);
  return tf.tensor(
    Float32Array.from({ length: n * length }, () => rng.int(vocab)),
    [n, length],
    'float32',
  );
}

/** Replace every weight of `model` with seeded N(0, std²) values (biases too, so they matter). */
export function randomizeWeights(model: tf.LayersModel, seed: number, std = 0.6): void {
  const rng = new Rng(seed);
  for (const w of model.weights) {
    const values = rng.normalArray(w.shape.reduce((a, b) => a! * b!, 1) as number, std);
    const t = tf.tensor(values, w.shape as number[], 'float32');
    w.write(t);
    t.dispose();
  }
}

export interface TinyNet {
  name: string;
  model: tf.LayersModel;
  /** Points (x1 with 3 points, x2 with 2 points). */
  x1: tf.Tensor;
  x2: tf.Tensor;
}

function seq(layers: tf.layers.Layer[]): tf.Sequential {
  return tf.sequential({ layers });
}

/**
 * One tiny network per supported layer type (V = 3 or 4), with seeded weights and points; the
 * structured path supports every one of them (correctness.test.ts asserts it).
 */
export function tinyNets(): TinyNet[] {
  const nets: TinyNet[] = [];
  const add = (name: string, model: tf.LayersModel, shape: number[], seed: number, tokens?: number) => {
    randomizeWeights(model, seed);
    const make = (n: number, s: number) =>
      tokens ? tokenPoints(n, shape[0]!, tokens, s) : normalPoints(n, shape, s);
    nets.push({ name, model, x1: make(3, seed + 1), x2: make(2, seed + 2) });
  };
  add(
    'dense-fused',
    seq([
      tf.layers.dense({ inputShape: [5], units: 7, activation: 'tanh' }),
      tf.layers.dense({ units: 6, activation: 'relu' }),
      tf.layers.dense({ units: 3 }),
    ]),
    [5],
    10,
  );
  add(
    'dense-unfused-dropout',
    seq([
      tf.layers.dense({ inputShape: [4], units: 6 }),
      tf.layers.activation({ activation: 'relu' }),
      tf.layers.dropout({ rate: 0.5 }),
      tf.layers.dense({ units: 5, useBias: false }),
      tf.layers.activation({ activation: 'tanh' }),
      tf.layers.dense({ units: 4 }),
    ]),
    [4],
    20,
  );
  add(
    'dense-gelu-fused-head-tanh',
    seq([
      tf.layers.dense({ inputShape: [4], units: 5, activation: 'gelu' }),
      tf.layers.dense({ units: 3, activation: 'tanh' }),
    ]),
    [4],
    30,
  );
  add(
    'scaled-dense-erf-gelu-scale',
    seq([
      new ScaledDense({ inputShape: [4], units: 6, weightScale: 0.5, biasScale: 0.3 }),
      new ElementwiseActivation({ fn: 'erf' }),
      new ScaledDense({ units: 5 }),
      new ElementwiseActivation({ fn: 'gelu' }),
      new ScaledDense({ units: 3, biasScale: 0.7 }),
      new Scale({ factor: 0.5 }),
    ]),
    [4],
    40,
  );
  add(
    'conv-pool-flatten',
    seq([
      tf.layers.conv2d({
        inputShape: [6, 6, 2],
        filters: 3,
        kernelSize: 3,
        padding: 'same',
        activation: 'relu',
      }),
      tf.layers.maxPooling2d({ poolSize: 2, strides: 2 }),
      tf.layers.conv2d({ filters: 2, kernelSize: 2, padding: 'valid' }),
      tf.layers.activation({ activation: 'tanh' }),
      tf.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'valid' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ]),
    [6, 6, 2],
    50,
  );
  add(
    'conv-strided',
    seq([
      tf.layers.conv2d({
        inputShape: [7, 7, 1],
        filters: 2,
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        activation: 'tanh',
      }),
      tf.layers.conv2d({ filters: 2, kernelSize: 2, strides: [1, 2], padding: 'valid' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ]),
    [7, 7, 1],
    60,
  );
  add(
    'embedding-reshape-shared-dense',
    seq([
      tf.layers.embedding({ inputDim: 6, outputDim: 3, inputLength: 4 }),
      tf.layers.reshape({ targetShape: [2, 6] }),
      tf.layers.dense({ units: 4, activation: 'tanh' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3 }),
    ]),
    [4],
    70,
    6,
  );
  return nets;
}
