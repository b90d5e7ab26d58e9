/**
 * Factor passes in worker threads (src/kernel/factor-job.ts, factor-worker.ts): each worker rebuilds
 * the model from its topology and weights on its own backend and computes the factor blocks it
 * claims with the main thread's code. The test hook `mainThreadFactors = false` leaves every factor
 * block to the worker, so the comparison certainly covers worker-computed factors; the result must
 * be BITWISE identical to the single-threaded kernel (tolerance zero), and the worker keeps no
 * tensor but the cached model's weights.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { ruleTestHooks } from '../../src/kernel/analyze.js';
import { testHooks } from '../../src/kernel/engine.js';
import { empiricalNtkFn, type NtkOptions, terminateNtkWorkers } from '../../src/kernel/index.js';
import { lastFactorRefusals, lastWorkerTensors, sharedPool } from '../../src/kernel/job.js';
import { buildModel } from '../../src/model/index.js';
import { TINY_POST, tokenBatch } from '../model/transformer-fixtures.js';
import { graphNets } from './graph-nets.js';
import { normalPoints, randomizeWeights } from './helpers.js';

afterEach(() => {
  testHooks.mainThreadFactors = true;
  ruleTestHooks.autodiff.clear();
});
afterAll(async () => {
  await terminateNtkWorkers();
});

const bytes = (data: Float32Array | Float64Array) =>
  Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));

/** The kernel on 2 threads with every factor block computed by the worker, vs 1 thread. */
async function compareWorkerFactors(
  model: tf.LayersModel,
  x1: tf.Tensor,
  x2: tf.Tensor | null,
  options: NtkOptions = {},
): Promise<void> {
  const opts: NtkOptions = { blockSize: 1, progress: false, ...options };
  const single = await empiricalNtkFn(model, opts)(x1, x2);
  testHooks.mainThreadFactors = false;
  const multi = await empiricalNtkFn(model, { ...opts, threads: 2 })(x1, x2);
  testHooks.mainThreadFactors = true;
  const { pool } = await sharedPool(1, tf.getBackend());
  expect(lastFactorRefusals(pool)).toEqual([]);
  expect(multi.threads).toBe(2);
  // Every block of points (x1's, then x2's) had its factors computed by the worker.
  expect(multi.workerFactorBlocks).toBe(x1.shape[0]! + (x2?.shape[0] ?? 0));
  expect(multi.shape).toEqual(single.shape);
  expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
  expect(lastWorkerTensors(pool)).toEqual([0]);
}

describe('factor blocks computed by a worker ≡ main thread (bitwise)', () => {
  it.each(graphNets().map((n) => [n.name, n] as const))('%s', async (_, net) => {
    await compareWorkerFactors(net.model, net.x1, null);
    await compareWorkerFactors(net.model, net.x1, net.x2);
  });

  it('transformer, all parameters and the last block + head', async () => {
    const L = TINY_POST.maxLength;
    const tokens = tf.tensor(tokenBatch(5, L, TINY_POST.vocabSize!, 43), [5, 2 * L]);
    const net = buildModel(TINY_POST, { inputShape: [2 * L], numClasses: 3, seed: 3 });
    randomizeWeights(net, 4, 0.5);
    try {
      await compareWorkerFactors(net, tokens, null);
      await compareWorkerFactors(net, tokens, null, { parameters: ['block1/', 'head'] });
    } finally {
      net.dispose();
      tokens.dispose();
    }
  });

  it('softmax output with logits pre-activation, and the autodiff rule forced by the test hook', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [6], activation: 'tanh', parameterization: 'standard' },
      { inputShape: [4], numClasses: 3, seed: 2 },
    );
    const x = normalPoints(3, [4], 9);
    const soft = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 5, activation: 'tanh' }),
        tf.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    randomizeWeights(soft, 3, 0.7);
    try {
      await compareWorkerFactors(soft, x, null, { logits: 'pre-activation' });
      const first = model.layers.find((l) => l.trainableWeights.length > 0)!.name;
      ruleTestHooks.autodiff.add(first);
      const fn = empiricalNtkFn(model, { progress: false });
      expect(fn.plan.rules.find((r) => r.name === first)!.rule).toBe('autodiff');
      await compareWorkerFactors(model, x, null);
    } finally {
      model.dispose();
      soft.dispose();
      x.dispose();
    }
  });

  it('the worker sees the weights of each call (its model is kept between calls)', async () => {
    const model = buildModel(
      { kind: 'mlp', widths: [8], activation: 'gelu', parameterization: 'ntk' },
      { inputShape: [5], numClasses: 3, seed: 4 },
    );
    const x = normalPoints(4, [5], 10);
    try {
      const single = empiricalNtkFn(model, { blockSize: 1, progress: false });
      const multi = empiricalNtkFn(model, { blockSize: 1, progress: false, threads: 2 });
      testHooks.mainThreadFactors = false;
      const before = await multi(x);
      randomizeWeights(model, 11, 0.9);
      const after = await multi(x);
      testHooks.mainThreadFactors = true;
      expect(after.workerFactorBlocks).toBe(4);
      expect(Buffer.compare(bytes(after.data), bytes(before.data))).not.toBe(0);
      expect(Buffer.compare(bytes(after.data), bytes((await single(x)).data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

/** A layer class registered only in this (main) thread: workers cannot rebuild a model using it. */
class MainThreadOnlyScale extends tf.layers.Layer {
  static className = 'EntkTestMainThreadOnlyScale';
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => tf.mul(Array.isArray(inputs) ? inputs[0]! : inputs, 1.5));
  }
}
tf.serialization.registerClass(MainThreadOnlyScale);

describe('a model the workers cannot rebuild', () => {
  it('has its factors computed on the main thread, with the same result', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 6, activation: 'tanh' }),
        new MainThreadOnlyScale({}),
        tf.layers.dense({ units: 3 }),
      ],
    });
    randomizeWeights(model, 5, 0.7);
    const x = normalPoints(4, [4], 12);
    try {
      const single = await empiricalNtkFn(model, { blockSize: 1, progress: false })(x);
      const multi = await empiricalNtkFn(model, { blockSize: 1, progress: false, threads: 2 })(x);
      expect(multi.implementation).toBe('structured');
      expect(multi.workerFactorBlocks).toBe(0);
      const { pool } = await sharedPool(1, tf.getBackend());
      expect(lastFactorRefusals(pool)).toEqual([expect.stringContaining('EntkTestMainThreadOnlyScale')]);
      expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});

describe('weights larger than the memory budget', () => {
  it('stay on the main thread (no copy of the model per worker)', async () => {
    // 300·1000 + 1000·3 weights ≈ 1.2 MB > the 1 MiB budget.
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [300], units: 1000, activation: 'tanh' }),
        tf.layers.dense({ units: 3 }),
      ],
    });
    const x = normalPoints(4, [300], 13);
    try {
      const options = { blockSize: 1, progress: false, memoryBudget: 2 ** 20 } as const;
      const single = await empiricalNtkFn(model, options)(x);
      testHooks.mainThreadFactors = false;
      const multi = await empiricalNtkFn(model, { ...options, threads: 2 })(x);
      expect(multi.threads).toBe(2);
      expect(multi.workerFactorBlocks).toBe(0);
      expect(Buffer.compare(bytes(multi.data), bytes(single.data))).toBe(0);
    } finally {
      model.dispose();
      x.dispose();
    }
  });
});
