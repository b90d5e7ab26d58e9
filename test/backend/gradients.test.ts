/**
 * entk's Tile gradient (src/backend/gradients.ts) against a float64 plain loop: every position of
 * the tiled output adds its dy to the source element it copies (index mod size along each axis).
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { installGradientFixes, tileGradient } from '../../src/backend/gradients.js';
import { Rng } from '../../src/util/rng.js';

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
