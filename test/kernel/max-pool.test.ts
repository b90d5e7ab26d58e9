/**
 * The replicated max-pool backward (src/backend/max-pool.ts): argmax found once per point, dy of
 * V copies scattered by it — bitwise equal to autodiff through tf.maxPool on the V copies (the
 * backend's MaxPoolGrad: entk's kernel on wasm), ties, all-zero and NaN windows, overlapping and
 * padded windows, and 1-D pooling as tfjs runs it (height-1 images). The reference is autodiff on
 * the cpu backend (tfjs's own MaxPoolGrad: entk's wasm kernel routes clipped and overlapping windows
 * through these same functions, so it would not be independent).
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { maxPoolArgmax, poolGeometry, replicatedMaxPoolGradient } from '../../src/backend/index.js';
import { Rng } from '../../src/util/rng.js';

describe('replicated max-pool gradient = autodiff through tf.maxPool of the replicated batch (bitwise)', () => {
  it.each([
    ['2×2 stride 2 valid', [6, 6, 3], [2, 2], [2, 2], 'valid'],
    ['2×2 stride 2 same, odd sizes (clipped windows)', [5, 7, 2], [2, 2], [2, 2], 'same'],
    ['3×3 stride 1 same (overlapping: float64 sums)', [5, 6, 3], [3, 3], [1, 1], 'same'],
    ['2×3 stride [2, 1] valid (overlapping columns)', [6, 7, 2], [2, 3], [2, 1], 'valid'],
    ['1-D as [L, 1, C]: window 3 stride 2', [9, 1, 4], [3, 1], [2, 1], 'valid'],
  ] as const)('%s', async (_, inShape, filter, strides, padding) => {
    const [b, V] = [3, 4];
    const rng = new Rng(inShape[0] * 10 + filter[1]);
    const size = inShape[0] * inShape[1] * inShape[2];
    // Ties everywhere (values from {0, 1, 2}), point 1 all zeros, one NaN in point 2.
    const x = Float32Array.from({ length: b * size }, () => Math.floor(rng.uniform() * 3));
    x.fill(0, size, 2 * size);
    x[2 * size + 5] = Number.NaN;
    const g = poolGeometry([...inShape], [...filter], [...strides], padding);
    const outSize = g.outShape[0] * g.outShape[1] * g.outShape[2];
    const dy = Float32Array.from(rng.normalArray(b * V * outSize));
    const index = maxPoolArgmax(x, b, g);
    const got = replicatedMaxPoolGradient(dy, index, V, g);
    // Into a reused, dirty array (longer than needed): the same values, nothing past them written.
    const dirty = new Float32Array(got.length + 3).fill(7);
    const into = replicatedMaxPoolGradient(dy, index, V, g, dirty);
    expect(Buffer.compare(Buffer.from(into.slice().buffer), Buffer.from(got.buffer))).toBe(0);
    expect(Array.from(dirty.subarray(got.length))).toEqual([7, 7, 7]);

    const backend = tf.getBackend();
    await tf.setBackend('cpu');
    let want: Float32Array;
    try {
      const before = tf.memory().numTensors;
      want = tf.tidy(() => {
        const xs = tf.tensor4d(x, [b, ...inShape]);
        // Row n·V + i = point n, as the eNTK's replicated batch.
        const xr = tf
          .concat(new Array<tf.Tensor>(V).fill(xs.reshape([b, 1, size])), 1)
          .reshape([b * V, ...inShape]);
        const dys = tf.tensor4d(dy, [b * V, ...g.outShape]);
        const pool = (t: tf.Tensor) => tf.maxPool(t as tf.Tensor4D, [...filter], [...strides], padding);
        expect(pool(xr).shape).toEqual([b * V, ...g.outShape]);
        return tf
          .grad((t: tf.Tensor) => tf.sum(tf.mul(pool(t), dys)))(xr)
          .dataSync() as Float32Array;
      });
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      await tf.setBackend(backend);
    }
    expect(got.length).toBe(want.length);
    expect(Buffer.compare(Buffer.from(got.buffer), Buffer.from(want.buffer))).toBe(0);
    // Not vacuous: every row received its window maxima's signals.
    for (let r = 0; r < b * V; r++)
      expect(got.subarray(r * size, (r + 1) * size).some((v) => v !== 0)).toBe(true);
  });

  it('the argmax is the first maximum in row-major window order; a window of NaNs routes nothing', () => {
    const g = poolGeometry([2, 2, 1], [2, 2], [2, 2], 'valid');
    expect(Array.from(maxPoolArgmax([1, 3, 3, 2], 1, g))).toEqual([1]);
    expect(Array.from(maxPoolArgmax([0, 0, 0, 0], 1, g))).toEqual([0]);
    expect(Array.from(maxPoolArgmax([Number.NaN, 1, 1, 0], 1, g))).toEqual([1]);
    expect(Array.from(maxPoolArgmax(new Array(4).fill(Number.NaN), 1, g))).toEqual([-1]);
    const dx = replicatedMaxPoolGradient([5], Int32Array.from([-1]), 1, g);
    expect(Array.from(dx)).toEqual([0, 0, 0, 0]);
    // A −0 signal lands as +0 (0 + dy), as autodiff through the backend kernel gives.
    const negZero = replicatedMaxPoolGradient([-0], Int32Array.from([1]), 1, g);
    const want = tf.tidy(() =>
      tf
        .grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, 2, 2, 'valid'), tf.scalar(-0))))(
          tf.tensor4d([1, 3, 2, 0], [1, 2, 2, 1]),
        )
        .dataSync(),
    );
    expect(Array.from(negZero).map((v) => Object.is(v, -0))).toEqual(
      Array.from(want).map((v) => Object.is(v, -0)),
    );
    expect(Object.is(negZero[1], 0)).toBe(true);
  });
});
